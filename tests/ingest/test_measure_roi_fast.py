"""The fast :func:`measure_roi` agrees with the plain one kept in ``measure_roi_plain.py``.

On the ROI frames of the synthetic stream (the pipeline benchmark's ``plankton-roi``
workload), their dark-field inversions, tilted backgrounds and the non-default settings:
the same signal (so the same mask and outline), the same area and Feret diameter and the
axes to 1e-9.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.contracts.preprocess import to_gray8
from seawatch.ingest.segment import SegmentParams, _roi_signal, measure_roi
from seawatch.models.synthetic_stream import synthetic_stream
from tests.ingest.measure_roi_plain import plain_measure_roi, plain_roi_signal

ROIS = 1500


def _rois(n: int, seed: int) -> list[tuple[np.ndarray, float | None]]:
    out = []
    for message in synthetic_stream(n, seed=seed, full_share=0.0, start_ns=0):
        image = cv2.imdecode(np.frombuffer(message.value, np.uint8), cv2.IMREAD_UNCHANGED)
        out.append((to_gray8(image), message.meta.pixel_size_um))
    return out


def _variants(gray: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The ROI, its dark-field inversion and the ROI under an illumination gradient."""
    w = gray.shape[1]
    ramp = np.linspace(-rng.uniform(0, 40), rng.uniform(0, 40), w, dtype=np.float32)
    tilted = np.clip(gray.astype(np.float32) + ramp[None, :], 0, 255).astype(np.uint8)
    return [gray, 255 - gray, tilted]


def _assert_same(gray: np.ndarray, params: SegmentParams, pixel: float | None) -> None:
    signal, floor = _roi_signal(gray, params)
    plain_signal, plain_floor = plain_roi_signal(gray, params)
    assert floor == plain_floor
    np.testing.assert_array_equal(signal, plain_signal)
    morph, plain = (
        measure_roi(gray, params, pixel).morph,
        plain_measure_roi(gray, params, pixel).morph,
    )
    assert (morph.area_px, morph.feret_px) == (plain.area_px, plain.feret_px)
    # the axes from moments summed in another order (0/1 mask, no binarising pass): ~1e-12
    assert morph.major_px == pytest.approx(plain.major_px, rel=1e-9, abs=1e-9)
    assert morph.minor_px == pytest.approx(plain.minor_px, rel=1e-9, abs=1e-9)


def test_the_stream_rois_measure_the_same() -> None:
    rng = np.random.default_rng(26)
    params = SegmentParams()
    for gray, pixel in _rois(ROIS, seed=26):
        for variant in _variants(gray, rng):
            _assert_same(variant, params, pixel)


@pytest.mark.parametrize(
    "params",
    [
        SegmentParams(polarity="dark-on-light"),
        SegmentParams(polarity="light-on-dark"),
        SegmentParams(threshold=30.0, close_px=0),
        SegmentParams(open_px=3, close_px=5),
    ],
)
def test_other_settings_measure_the_same(params: SegmentParams) -> None:
    rng = np.random.default_rng(27)
    for gray, pixel in _rois(150, seed=27):
        for variant in _variants(gray, rng):
            _assert_same(variant, params, pixel)


def test_tiny_and_flat_rois_measure_the_same() -> None:
    rng = np.random.default_rng(28)
    for h, w in [(1, 1), (1, 7), (2, 2), (3, 5), (9, 1)]:
        for gray in (rng.integers(0, 256, (h, w), dtype=np.uint8), np.full((h, w), 200, np.uint8)):
            _assert_same(gray, SegmentParams(), None)
