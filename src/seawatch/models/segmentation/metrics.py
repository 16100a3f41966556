"""Scores of predicted instances against true ones (numpy only).

- **instance mIoU**: the mean, over true instances, of the best IoU any predicted instance
  has with it (a missed object scores 0). What the ablation table reports, in points.
- **relative ESD error**: ``|ESD(predicted) - ESD(true)| / ESD(true)`` of each true object,
  with the predicted object that overlaps it most (objects no prediction touches are counted
  as misses, not errors).
- **count error**: ``|predicted - true| / true`` objects of a frame, both counted at the
  daemon's minimum ESD.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of every predicted instance (rows, labels 1..P) with every true one (columns)."""
    p, t = int(pred.max(initial=0)), int(truth.max(initial=0))
    joint = np.bincount(
        pred.ravel().astype(np.int64) * (t + 1) + truth.ravel(), minlength=(p + 1) * (t + 1)
    ).reshape(p + 1, t + 1)
    inter = joint[1:, 1:].astype(np.float64)
    area_p, area_t = joint[1:, :].sum(1), joint[:, 1:].sum(0)
    union = area_p[:, None] + area_t[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def inter_matrix(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Overlap in pixels of every predicted instance with every true one."""
    p, t = int(pred.max(initial=0)), int(truth.max(initial=0))
    joint = np.bincount(
        pred.ravel().astype(np.int64) * (t + 1) + truth.ravel(), minlength=(p + 1) * (t + 1)
    ).reshape(p + 1, t + 1)
    return joint[1:, 1:]


def best_iou_per_truth(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each true instance 1..T, the best IoU of a predicted one (0 when missed)."""
    iou = iou_matrix(pred, truth)
    return iou.max(0) if iou.shape[0] else np.zeros(iou.shape[1])


def best_iou_per_pred(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each predicted instance 1..P, its IoU with the true one it fits best (0: none):
    what the quality network learns to predict."""
    iou = iou_matrix(pred, truth)
    return iou.max(1) if iou.shape[1] else np.zeros(iou.shape[0])


def esd(area: np.ndarray | float) -> np.ndarray:
    """Equivalent spherical diameter of an area."""
    return 2.0 * np.sqrt(np.asarray(area, np.float64) / math.pi)


def esd_errors(
    pred_esd: np.ndarray, true_esd: np.ndarray, inter: np.ndarray
) -> tuple[np.ndarray, int]:
    """Relative ESD errors of the true objects that some prediction touches (each paired
    with the prediction that overlaps it most) and the number no prediction touches."""
    if inter.shape[0] == 0:
        return np.zeros(0), len(true_esd)
    best = inter.argmax(0)
    hit = inter.max(0) > 0
    errors = np.abs(pred_esd[best[hit]] - true_esd[hit]) / true_esd[hit]
    return errors, int((~hit).sum())


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (nan for fewer than three pairs or constant input)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


__all__ = [
    "best_iou_per_pred",
    "best_iou_per_truth",
    "esd",
    "esd_errors",
    "inter_matrix",
    "iou_matrix",
    "spearman",
]
