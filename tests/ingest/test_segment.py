"""Segmentation of synthetic frames that look like real ones: vignetting, drift, soft edges."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from seawatch.contracts.errors import FrameError
from seawatch.contracts.preprocess import to_gray8
from seawatch.ingest.segment import SegmentParams, measure_roi, segment_full


@dataclass(frozen=True)
class Blob:
    cx: float
    cy: float
    a: float  # semi-axes, px
    b: float
    angle: float = 0.0

    @property
    def esd(self) -> float:
        return 2.0 * math.sqrt(self.a * self.b)


def _shapes(blobs: list[Blob], h: int, w: int) -> np.ndarray:
    """Coverage (0..1) of the blobs, with a soft one-pixel edge like an out-of-focus rim."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cover = np.zeros((h, w), np.float32)
    for blob in blobs:
        t = math.radians(blob.angle)
        u = (xx - blob.cx) * math.cos(t) + (yy - blob.cy) * math.sin(t)
        v = -(xx - blob.cx) * math.sin(t) + (yy - blob.cy) * math.cos(t)
        r = np.sqrt((u / blob.a) ** 2 + (v / blob.b) ** 2)
        edge = (1.0 - r) * min(blob.a, blob.b)  # ~ distance inside the edge, px
        cover = np.maximum(cover, np.clip(edge + 0.5, 0.0, 1.0))
    return cover


def _scene(
    blobs: list[Blob],
    h: int,
    w: int,
    dark_on_light: bool,
    seed: int = 0,
    depth: int = 255,
    vignetting: float = 0.25,
) -> np.ndarray:
    """A frame with vignetting (corners at half the centre's brightness by default), a
    drifting (tilted) background and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = 1.0 - vignetting * r2
    drift = 0.8 + 0.2 * xx / w
    cover = _shapes(blobs, h, w)
    scale = depth / 255.0
    if dark_on_light:
        background = 230.0 * vignette * drift
        image = background * (1.0 - 0.55 * cover)
    else:
        background = 15.0 + 25.0 * drift * vignette
        image = background + 170.0 * cover * vignette
    image = image * scale + rng.normal(0.0, 2.0 * scale, (h, w))
    return np.clip(image, 0, depth).astype(np.uint8 if depth == 255 else np.uint16)


def _grid(
    n: int, h: int, w: int, seed: int = 0, sizes: tuple[float, float] = (5.0, 22.0)
) -> list[Blob]:
    rng = np.random.default_rng(seed)
    cols = math.ceil(math.sqrt(n * w / h))
    rows = math.ceil(n / cols)
    cw, ch = w / cols, h / rows
    blobs = []
    for k in range(n):
        row, col = divmod(k, cols)
        a = rng.uniform(*sizes)
        b = a * rng.uniform(0.5, 1.0) if k % 2 else a
        blobs.append(Blob(col * cw + cw / 2, row * ch + ch / 2, a, b, rng.uniform(0, 180)))
    return blobs


def _check_objects(objects: list, blobs: list[Blob], frame: np.ndarray) -> None:
    assert len(objects) == len(blobs)
    h, w = frame.shape
    esds = sorted(o.morph.esd_px for o in objects)
    for got, want in zip(esds, sorted(b.esd for b in blobs), strict=True):
        assert got == pytest.approx(want, rel=0.05, abs=0.6)
    for i, obj in enumerate(objects):
        x, y, bw, bh = obj.bbox
        assert obj.index == i
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
        assert obj.image.dtype == np.uint8
        np.testing.assert_array_equal(obj.image, frame[y : y + bh, x : x + bw])
    tops = [o.bbox[1] for o in objects]
    assert tops == sorted(tops)  # reading order: top to bottom


@pytest.mark.parametrize("dark_on_light", [True, False])
@pytest.mark.parametrize("polarity", ["auto", "explicit"])
def test_known_blobs_on_vignetted_drifting_background(dark_on_light: bool, polarity: str) -> None:
    h, w = 480, 640
    blobs = _grid(24, h, w, seed=1)
    frame = _scene(blobs, h, w, dark_on_light, seed=2)
    if polarity == "explicit":
        polarity = "dark-on-light" if dark_on_light else "light-on-dark"
    objects = segment_full(frame, SegmentParams(polarity=polarity), None)  # type: ignore[arg-type]
    _check_objects(objects, blobs, frame)


def test_flat_field_is_needed_for_this_scene() -> None:
    # A blob near the centre is no darker than the background in the corners: one global
    # threshold cannot separate them, the background-normalised signal can.
    h, w = 480, 640
    frame = _scene([Blob(w / 2, h / 2, 15, 15)], h, w, True)
    assert frame[h // 2, w // 2] >= frame[2, 2] - 25
    objects = segment_full(frame, SegmentParams(), None)
    assert len(objects) == 1
    assert objects[0].morph.esd_px == pytest.approx(30, rel=0.05)


def test_wrong_polarity_does_not_invent_the_objects() -> None:
    h, w = 240, 320
    blobs = _grid(6, h, w, seed=3)
    frame = _scene(blobs, h, w, dark_on_light=True)
    assert segment_full(frame, SegmentParams(polarity="light-on-dark"), None) == []


def test_min_esd_filters_specks() -> None:
    h, w = 240, 320
    big = [Blob(60, 60, 12, 12), Blob(240, 160, 9, 6, 30)]
    specks = [Blob(200, 40, 1.5, 1.5), Blob(60, 200, 2.0, 2.0)]  # ESD 3 and 4 px
    frame = _scene(big + specks, h, w, dark_on_light=True)
    objects = segment_full(frame, SegmentParams(), None)
    _check_objects(objects, big, frame)
    assert len(segment_full(frame, SegmentParams(min_esd_px=2.0), None)) == 4


def test_min_esd_in_micrometres_when_the_pixel_size_is_known() -> None:
    h, w = 240, 320
    blobs = [Blob(60, 60, 12, 12), Blob(240, 160, 4, 4)]  # ESD 24 px and 8 px
    frame = _scene(blobs, h, w, dark_on_light=False)
    params = SegmentParams(min_esd_px=2.0, min_esd_um=50.0)
    objects = segment_full(frame, params, pixel_size_um=5.0)  # 50 um = 10 px
    assert len(objects) == 1
    morph = objects[0].morph
    assert morph.pixel_size_um == 5.0
    assert morph.esd_um == pytest.approx(24 * 5.0, rel=0.05)
    assert len(segment_full(frame, params, pixel_size_um=None)) == 2  # falls back to 2 px


def test_objects_cut_by_the_frame_edge_stay_inside() -> None:
    h, w = 200, 300
    blobs = [Blob(3, 100, 15, 15), Blob(150, 197, 12, 12), Blob(150, 60, 10, 10)]
    frame = _scene(blobs, h, w, dark_on_light=True)
    objects = segment_full(frame, SegmentParams(pad_px=8), None)
    assert len(objects) == 3
    for obj in objects:
        x, y, bw, bh = obj.bbox
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
        assert obj.image.shape == (bh, bw)
    inner = next(o for o in objects if o.bbox[1] > 30 and o.bbox[1] < 100)
    assert inner.bbox[2] == pytest.approx(20 + 1 + 16, abs=2)  # object + 2 x pad


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_empty_frames_give_no_objects(dark_on_light: bool) -> None:
    assert segment_full(_scene([], 480, 640, dark_on_light, seed=5), SegmentParams(), None) == []


@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_and_degenerate_frames(value: int) -> None:
    params = SegmentParams()
    assert segment_full(np.full((300, 400), value, np.uint8), params, None) == []
    assert segment_full(np.full((1, 1), value, np.uint8), params, None) == []
    assert segment_full(np.zeros((0, 0), np.uint8), params, None) == []


def test_tiny_frame_smaller_than_the_background_kernel() -> None:
    blobs = [Blob(20, 15, 6, 6)]
    frame = _scene(blobs, 30, 40, dark_on_light=True)
    objects = segment_full(frame, SegmentParams(), None)
    assert len(objects) == 1


def test_sixteen_bit_frame_after_to_gray8() -> None:
    h, w = 480, 640
    blobs = _grid(12, h, w, seed=7)
    frame16 = _scene(blobs, h, w, dark_on_light=True, depth=4095)  # 12-bit camera
    assert frame16.dtype == np.uint16
    gray = to_gray8(frame16)
    _check_objects(segment_full(gray, SegmentParams(), None), blobs, gray)


def test_fixed_threshold() -> None:
    h, w = 240, 320
    blobs = _grid(4, h, w, seed=8, sizes=(10, 20))
    frame = _scene(blobs, h, w, dark_on_light=True)
    _check_objects(segment_full(frame, SegmentParams(threshold=60.0), None), blobs, frame)
    assert segment_full(frame, SegmentParams(threshold=250.0), None) == []


def test_too_many_objects_is_a_frame_error() -> None:
    h, w = 240, 320
    frame = _scene(_grid(12, h, w, seed=9, sizes=(5, 8)), h, w, dark_on_light=True)
    with pytest.raises(FrameError) as info:
        segment_full(frame, SegmentParams(max_objects=5), None)
    assert info.value.stage == "segment"
    assert "max_objects=5" in info.value.reason
    assert len(segment_full(frame, SegmentParams(max_objects=12), None)) == 12


def test_input_must_be_gray8() -> None:
    with pytest.raises(ValueError, match="to_gray8"):
        segment_full(np.zeros((10, 10, 3), np.uint8), SegmentParams(), None)
    with pytest.raises(ValueError, match="to_gray8"):
        measure_roi(np.zeros((10, 10), np.uint16), SegmentParams(), None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"polarity": "sideways"},
        {"threshold": "triangle"},
        {"threshold": 0.0},
        {"threshold": 300.0},
        {"background_kernel": 100},
        {"background_kernel": 1},
        {"min_esd_px": -1.0},
        {"pad_px": -1},
        {"max_objects": 0},
    ],
)
def test_params_are_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SegmentParams(**kwargs)


# --- ROI frames -----------------------------------------------------------------------------


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_roi_measures_the_object_and_keeps_the_crop(dark_on_light: bool) -> None:
    blob = Blob(50, 35, 30, 14, 20)
    roi = _scene([blob], 70, 100, dark_on_light, seed=11, vignetting=0.02)  # a tilted background
    obj = measure_roi(roi, SegmentParams(), pixel_size_um=2.0)
    assert obj.bbox == (0, 0, 100, 70)
    assert obj.index == 0
    assert obj.image is roi
    assert obj.morph.esd_px == pytest.approx(blob.esd, rel=0.05)
    assert obj.morph.major_px == pytest.approx(60, rel=0.05)
    assert obj.morph.minor_px == pytest.approx(28, rel=0.07)
    assert obj.morph.esd_um == pytest.approx(blob.esd * 2.0, rel=0.05)


def test_roi_object_touching_the_border() -> None:
    blob = Blob(8, 30, 14, 10)  # cut by the left edge
    roi = _scene([blob], 60, 80, dark_on_light=True, seed=12, vignetting=0.02)
    obj = measure_roi(roi, SegmentParams(), None)
    visible = _shapes([blob], 60, 80) >= 0.5
    assert obj.morph.area_px == pytest.approx(visible.sum(), rel=0.07)


def test_roi_takes_the_largest_blob() -> None:
    roi = _scene([Blob(30, 30, 15, 15), Blob(85, 60, 4, 4)], 80, 110, True, vignetting=0.02)
    obj = measure_roi(roi, SegmentParams(), None)
    assert obj.morph.esd_px == pytest.approx(30, rel=0.05)


def test_blank_roi_falls_back_to_the_whole_crop() -> None:
    roi = np.full((40, 60), 200, np.uint8)
    obj = measure_roi(roi, SegmentParams(), None)
    assert obj.morph.area_px == 40 * 60
    assert obj.morph.feret_px == pytest.approx(math.hypot(40, 60))


def test_empty_roi_is_a_frame_error() -> None:
    with pytest.raises(FrameError) as info:
        measure_roi(np.zeros((0, 5), np.uint8), SegmentParams(), None)
    assert info.value.stage == "segment"
