"""Scoring segmentations on held-out tiles or daemon frames at the daemon's resolution.

Both segmenters are scored on the same frames, against the same true masks:

- the **model**: its maps -> :func:`~seawatch.ingest.segment_model.instances` -> enlarged to
  the frame (:func:`~seawatch.ingest.segment_model.enlarge`), as the daemon cuts them;
- the **threshold**: :func:`~seawatch.ingest.segment.threshold_labels`, the objects
  :func:`~seawatch.ingest.segment.segment_full` keeps.

True objects count when their visible filled mask has an ESD of at least
:data:`~seawatch.models.segmentation.synthetic.MIN_ESD_PX` (the daemon's default minimum);
predicted objects are counted the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from seawatch.ingest.segment import SegmentParams, threshold_labels
from seawatch.ingest.segment_model import CORE_LEVEL, MERGE_LEVEL, label_maps
from seawatch.models.segmentation.metrics import best_iou_per_truth, esd, esd_errors, inter_matrix
from seawatch.models.segmentation.synthetic import MIN_ESD_PX

MapsFn = Callable[[np.ndarray], np.ndarray]  # network inputs N x H x W -> maps N x 2 x H x W


@dataclass
class FrameScores:
    """What one segmenter did on a set of frames."""

    best_iou: list[float]  # per counted true object
    esd_errors: list[float]  # per true object some prediction touches
    missed: int  # true objects no prediction touches
    count_errors: list[float]  # per frame, |pred - true| / true
    touching_count_errors: list[float]  # the same, frames with touching objects only

    def summary(self) -> dict[str, float | int]:
        """Means and medians, rounded."""

        def stat(values: Sequence[float], fn) -> float:
            return round(float(fn(values)), 4) if len(values) else float("nan")

        return {
            "miou": stat(self.best_iou, np.mean),
            "median_relative_esd_error": stat(self.esd_errors, np.median),
            "mean_relative_esd_error": stat(self.esd_errors, np.mean),
            "true_objects": len(self.best_iou),
            "missed_objects": self.missed,
            "mean_count_error": stat(self.count_errors, np.mean),
            "mean_count_error_touching_frames": stat(self.touching_count_errors, np.mean),
            "touching_frames": len(self.touching_count_errors),
        }


def _areas(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=int(labels.max(initial=0)) + 1)[1:]


def _filled_areas(labels: np.ndarray) -> np.ndarray:
    """Area of each label's filled mask (holes count, as the daemon measures)."""
    from seawatch.ingest.segment_model import boxes, fill_holes

    n = int(labels.max(initial=0))
    out = np.zeros(n, np.float64)
    for label, (x, y, w, h) in boxes(labels).items():
        mask, _ = fill_holes((labels[y : y + h, x : x + w] == label).astype(np.uint8))
        out[label - 1] = float(mask.sum())
    return out


def score_frame(pred: np.ndarray, truth: np.ndarray, touching: Sequence[bool], into: FrameScores):
    """Add one frame's scores (frame-size label maps) to ``into``."""
    true_esd, pred_esd = esd(_filled_areas(truth)), esd(_filled_areas(pred))
    counted = true_esd >= MIN_ESD_PX
    best = best_iou_per_truth(pred, truth)
    into.best_iou += best[counted].tolist()
    errors, missed = esd_errors(pred_esd, true_esd[counted], inter_matrix(pred, truth)[:, counted])
    into.esd_errors += errors.tolist()
    into.missed += missed
    n_true, n_pred = int(counted.sum()), int((pred_esd >= MIN_ESD_PX).sum())
    if n_true:
        error = abs(n_pred - n_true) / n_true
        into.count_errors.append(error)
        if any(t for t, c in zip(touching, counted, strict=True) if c):
            into.touching_count_errors.append(error)


def model_labels(
    maps: np.ndarray,
    shape: tuple[int, int],
    *,
    core_level: float = CORE_LEVEL,
    merge_level: float = MERGE_LEVEL,
) -> np.ndarray:
    """The daemon's frame-size label map from one frame's maps (padding included), split
    at the given centre-ness levels (:func:`~seawatch.ingest.segment_model.instances`)."""
    return label_maps(maps, shape, core_level=core_level, merge_level=merge_level)[1]


def score_model(
    maps: np.ndarray, images: Sequence[np.ndarray], truths: Sequence[np.ndarray], touching
) -> FrameScores:
    """The model's scores from its maps of ``images``."""
    scores = FrameScores([], [], 0, [], [])
    for m, image, truth, touch in zip(maps, images, truths, touching, strict=True):
        score_frame(model_labels(m, image.shape), truth, touch, scores)
    return scores


def score_threshold(
    images: Sequence[np.ndarray], truths: Sequence[np.ndarray], touching, params=None
) -> FrameScores:
    """The global threshold's scores on ``images``."""
    params = params or SegmentParams()
    scores = FrameScores([], [], 0, [], [])
    for image, truth, touch in zip(images, truths, touching, strict=True):
        score_frame(threshold_labels(image, params, None), truth, touch, scores)
    return scores


__all__ = ["FrameScores", "model_labels", "score_frame", "score_model", "score_threshold"]
