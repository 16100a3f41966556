"""Model-based cutting of full frames: maps -> instances -> measured objects."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from seawatch.contracts.errors import FrameError
from seawatch.ingest.segment import SegmentParams, segment_full, threshold_labels
from seawatch.ingest.segment_model import (
    CENTRE,
    FOREGROUND,
    QUALITY_SIZE,
    boxes,
    frame_score,
    instances,
    model_input,
    objects_from_maps,
    quality_windows,
)


def _maps(h: int, w: int) -> np.ndarray:
    return np.zeros((2, h, w), np.float32)


def _disc(maps: np.ndarray, cx: float, cy: float, r: float) -> None:
    """A disc of foreground with its centre-ness (1 at the centre, 0 at the edge)."""
    yy, xx = np.mgrid[0 : maps.shape[1], 0 : maps.shape[2]]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    inside = d <= r
    maps[FOREGROUND][inside] = 0.95
    maps[CENTRE][inside] = np.maximum(maps[CENTRE][inside], 1.0 - d[inside] / r)


def test_two_centre_peaks_split_two_touching_objects():
    maps = _maps(40, 60)
    _disc(maps, 20, 20, 9)
    _disc(maps, 36, 20, 9)  # overlapping discs: one blob, two centres
    labels = instances(maps)
    assert labels.max() == 2
    # every foreground pixel belongs to one of the two, the valley included
    assert ((labels > 0) == (maps[FOREGROUND] > 0.5)).all()
    left, right = labels[20, 12], labels[20, 44]
    assert left != right and left > 0 and right > 0
    maps[CENTRE, :, 24:33] = 0.8  # no valley: one object
    assert instances(maps).max() == 1


def test_a_blob_without_a_core_is_still_an_object():
    maps = _maps(30, 30)
    _disc(maps, 15, 15, 4)
    maps[CENTRE] = 0.1  # no centre over one half: no core
    assert instances(maps).max() == 1


def test_specks_of_centre_ness_join_their_neighbour():
    maps = _maps(30, 40)
    _disc(maps, 20, 15, 8)
    maps[CENTRE, 15, 13] = 0.9  # a one-pixel core apart from the disc's
    labels = instances(maps)
    assert labels.max() == 1


def test_objects_are_measured_at_the_frame_resolution():
    gray = np.full((200, 240), 200, np.uint8)
    maps = _maps(100, 120)
    _disc(maps, 30, 30, 10)  # radius 20 px in the frame
    _disc(maps, 90, 70, 3)  # radius 6 px
    objects, small, kept = objects_from_maps(gray, maps, SegmentParams(), None)
    assert len(objects) == 2 and small.max() == 2 and sorted(kept) == [1, 2]
    assert objects[0].morph.esd_px == pytest.approx(40.0, rel=0.06)
    assert objects[1].morph.esd_px == pytest.approx(12.0, rel=0.15)
    _, _, w, h = objects[0].bbox  # padded by pad_px = 4 around the 40 px disc
    assert (w, h) == pytest.approx((49, 49), abs=3) and objects[0].image.shape == (h, w)


def test_objects_under_the_minimum_esd_are_dropped_and_too_many_is_a_frame_error():
    gray = np.full((100, 100), 200, np.uint8)
    maps = _maps(50, 50)
    _disc(maps, 10, 10, 1)  # ESD ~4 px in the frame: under the 6 px minimum
    _disc(maps, 30, 30, 6)
    objects, _, _ = objects_from_maps(gray, maps, SegmentParams(), None)
    assert len(objects) == 1
    with pytest.raises(FrameError, match="max_objects"):
        _disc(maps, 10, 40, 5)
        objects_from_maps(gray, maps, SegmentParams(max_objects=1), None)


def test_the_model_input_is_the_flat_field_signal_at_half_size_padded_to_the_stride():
    rng = np.random.default_rng(1)
    gray = np.clip(rng.normal(200, 2, (150, 230)), 0, 255).astype(np.uint8)
    cv2.circle(gray, (60, 60), 15, 90, -1)
    made = model_input(gray, SegmentParams(), stride=16)
    assert (made.height, made.width) == (75, 115)
    assert made.signal.shape == (80, 128) and made.signal.dtype == np.uint8
    assert made.signal[30, 30] > 100  # the dark disc is bright signal
    assert made.signal[:75, :115][made.signal[:75, :115] < 50].mean() < 10  # background ~0
    assert not made.signal[75:].any() and not made.signal[:, 115:].any()


def test_quality_windows_centre_each_instance_and_frame_score_is_their_mean():
    maps = _maps(64, 64)
    _disc(maps, 20, 20, 6)
    _disc(maps, 50, 45, 4)
    labels = instances(maps)
    signal = (maps[FOREGROUND] * 100).astype(np.uint8)
    windows = quality_windows(signal, maps, labels, [1, 2])
    assert windows.shape == (2, 6, QUALITY_SIZE, QUALITY_SIZE)
    centre = QUALITY_SIZE // 2
    assert windows[0, 3, centre, centre] > 0.9 and windows[0, 3, 0, 0] == 0.0
    assert (windows[:, 4] > 0).all() and (windows[:, 5] < 1).all()
    assert boxes(labels)[1] == (14, 14, 13, 13)
    assert frame_score(np.array([0.5, 0.7])) == pytest.approx(0.6)
    assert frame_score(np.zeros(0)) is None


def test_threshold_labels_are_the_objects_segment_full_keeps():
    gray = np.full((120, 160), 210, np.uint8)
    for cx, cy, r in ((30, 30, 10), (100, 60, 14), (140, 100, 2)):
        cv2.circle(gray, (cx, cy), r, 60, -1)
    labels = threshold_labels(gray, SegmentParams(), None)
    objects = segment_full(gray, SegmentParams(), None)
    assert labels.max() == len(objects) == 2
    for i, obj in enumerate(objects):
        area = int((labels == i + 1).sum())
        assert area == pytest.approx(obj.morph.area_px, rel=0.01)
        assert obj.morph.esd_px == pytest.approx(2 * math.sqrt(area / math.pi), rel=0.01)


def test_two_peaks_joined_by_a_ridge_are_one_lobed_object():
    maps = _maps(30, 60)
    _disc(maps, 15, 15, 9)
    _disc(maps, 44, 15, 9)
    maps[FOREGROUND, 13:18, 15:45] = 0.95  # a bridge of foreground between the lobes
    maps[CENTRE, 13:18, 22:38] = 0.4  # over merge_level: the same object
    assert instances(maps).max() == 1
    maps[CENTRE, 13:18, 22:38] = 0.2  # under it: two objects joined by a thin strip
    assert instances(maps).max() == 2
