"""The hard full-frame generator and the segmentation targets and scores built on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.ingest.segment import SegmentParams
from seawatch.models.segmentation.data import centre_map, make_tiles, targets
from seawatch.models.segmentation.evaluate import score_threshold
from seawatch.models.segmentation.metrics import (
    best_iou_per_pred,
    best_iou_per_truth,
    esd_errors,
    iou_matrix,
    spearman,
)
from seawatch.models.segmentation.synthetic import (
    EASY,
    Hardness,
    esd_of_labels,
    render_hard_frame,
)


def _frames(n: int, seed: int, hardness: Hardness | None = None):
    rng = np.random.default_rng(seed)
    return [render_hard_frame(rng, n_objects=9, hardness=hardness) for _ in range(n)]


def test_the_same_seed_draws_the_same_frame_and_the_truth_is_consistent():
    a, b = _frames(1, 7_100_250)[0], _frames(1, 7_100_250)[0]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.image.dtype == np.uint8 and a.labels.dtype == np.int32
    assert a.labels.max() == a.n_instances == len(a.touching) == len(a.defocused)
    assert all((a.labels == i + 1).any() for i in range(a.n_instances))
    assert len(a.boxes()) == a.n_instances


def test_touching_instances_touch_and_the_easy_mode_has_none():
    frames = _frames(6, 7_100_251)
    touching = [t for f in frames for t in f.touching]
    assert sum(touching) >= 0.2 * len(touching)  # the hard mode places many against others
    kernel = np.ones((3, 3), np.uint8)
    for frame in frames:
        for i, flag in enumerate(frame.touching):
            grown = cv2.dilate((frame.labels == i + 1).astype(np.uint8), kernel) > 0
            others = np.setdiff1d(np.unique(frame.labels[grown]), [0, i + 1])
            assert flag == (len(others) > 0), (i, flag, others)
    easy = _frames(4, 7_100_252, EASY)
    assert not any(t for f in easy for t in f.touching)
    assert not any(d for f in easy for d in f.defocused)


def test_the_hard_frames_are_hard_for_the_threshold_and_the_easy_ones_are_not():
    """What the model is for: on the same scenes the global threshold loses much of its
    accuracy once objects touch, defocus and fade."""

    def score(hardness):
        frames = _frames(6, 7_100_253, hardness)
        s = score_threshold(
            [f.image for f in frames], [f.labels for f in frames], [f.touching for f in frames]
        )
        return s.summary()

    easy, hard = score(EASY), score(None)
    assert easy["miou"] > 0.45  # marine snow breaks into pieces even when it is easy
    assert hard["miou"] < easy["miou"] - 0.08
    assert hard["touching_frames"] > 0 and easy["touching_frames"] == 0
    assert hard["median_relative_esd_error"] > easy["median_relative_esd_error"]


def test_hardness_is_checked():
    with pytest.raises(ValueError, match="touching"):
        Hardness(touching=1.5)
    with pytest.raises(ValueError, match="64x64"):
        render_hard_frame(np.random.default_rng(0), width=32)
    with pytest.raises(ValueError, match="unknown taxon"):
        render_hard_frame(np.random.default_rng(0), taxa=["kraken"])


def test_tiles_hold_the_network_inputs_and_half_size_labels():
    tiles = make_tiles(3, 7_100_254, keep_full=True, params=SegmentParams())
    assert tiles.inputs.shape == tiles.labels.shape == (3, 256, 256)
    assert tiles.images[0].shape == tiles.full_labels[0].shape == (512, 512)
    sub = tiles.subset([2, 0])
    assert np.array_equal(sub.inputs[1], tiles.inputs[0]) and sub.taxa[0] == tiles.taxa[2]
    assert esd_of_labels(tiles.full_labels[0], 1)[0] > 0


def test_centre_ness_peaks_inside_each_instance_with_a_valley_where_they_touch():
    labels = np.zeros((11, 22), np.int32)
    labels[1:10, 1:11] = 1
    labels[1:10, 11:21] = 2
    centre = centre_map(labels)
    assert centre.max() == pytest.approx(1.0) and (centre[labels == 0] == 0).all()
    row = centre[5]
    assert row[5] == pytest.approx(1.0) and row[15] == pytest.approx(1.0)
    assert row[10] < 0.3 and row[11] < 0.3  # the shared border is an edge of both
    fg, target = targets(labels)
    assert fg.sum() == 9 * 20 and target.dtype == np.uint8 and target.max() == 255


def test_instance_scores():
    truth = np.zeros((10, 10), np.int32)
    truth[0:4, 0:4] = 1  # 16 px
    truth[6:10, 6:10] = 2
    pred = np.zeros_like(truth)
    pred[0:4, 0:2] = 1  # half of object 1
    iou = iou_matrix(pred, truth)
    assert iou.shape == (1, 2) and iou[0, 0] == pytest.approx(0.5) and iou[0, 1] == 0
    assert best_iou_per_truth(pred, truth).tolist() == [0.5, 0.0]
    assert best_iou_per_pred(pred, truth).tolist() == [0.5]
    errors, missed = esd_errors(np.array([4.0]), np.array([8.0, 8.0]), np.array([[8, 0]]))
    assert errors.tolist() == [0.5] and missed == 1
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([2, 4, 6, 9.0])) == pytest.approx(1.0)


def test_objects_under_the_minimum_esd_are_not_scored():
    from seawatch.models.segmentation.evaluate import FrameScores, score_frame

    truth = np.zeros((40, 40), np.int32)
    truth[2:4, 2:4] = 1  # ESD 2.3 px: debris-sized, not counted
    truth[10:30, 10:30] = 2
    pred = np.zeros_like(truth)
    pred[10:30, 10:20] = 1  # half of the counted one
    scores = FrameScores([], [], 0, [], [])
    score_frame(pred, truth, (False, True), scores)
    assert scores.best_iou == [0.5] and scores.missed == 0
    assert scores.esd_errors == [pytest.approx(1 - np.sqrt(0.5))]
    assert scores.count_errors == [0.0] and scores.touching_count_errors == [0.0]
