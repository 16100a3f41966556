"""Evaluation of an otolith anomaly detector from ONNX Runtime outputs (no torch).

Rank-based AUROC and ROC curves (numpy), the false-alarm threshold, per-defect detection
rates, and two figures drawn with OpenCV: ``roc.png`` and ``heatmaps.png``.
:func:`evaluate_otolith` regenerates the held-out synthetic test set recorded in a model's
card, runs the artifact through the daemon's own head (:class:`OtolithDetector`) and writes
``evaluation.json`` and the figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.inference.factory import open_backend
from seawatch.models.otolith.head import OtolithDetector, overlay_heatmap
from seawatch.models.otolith.synthetic import ANOMALY_TYPES, NORMAL, make_dataset

EVALUATION_FILE, ROC_FILE, HEATMAPS_FILE = "evaluation.json", "roc.png", "heatmaps.png"
_FONT, _BLACK = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); labels 1 = anomaly."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        msg = f"AUROC needs both classes, got {n_pos} anomalies and {n_neg} normals"
        raise ValueError(msg)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    if (counts > 1).any():  # average the ranks of tied scores
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    fpr = np.r_[0.0, fp / max(1, (~labels).sum())]
    tpr = np.r_[0.0, tp / max(1, labels.sum())]
    return fpr, tpr


def calibrate_threshold(normal_scores: np.ndarray, false_alarm_rate: float) -> float:
    """Score threshold that at most ``false_alarm_rate`` of these normal scores exceed.

    With n scores, k = floor(rate x n) may lie above it: the threshold is midway between the
    k-th and (k+1)-th largest (the largest itself when k = 0). A specimen is an anomaly
    when its score is strictly greater.
    """
    if not 0.0 <= false_alarm_rate < 1.0:
        msg = f"false_alarm_rate must be in [0, 1), got {false_alarm_rate}"
        raise ValueError(msg)
    s = np.sort(np.asarray(normal_scores, np.float64))
    if not len(s):
        raise ValueError("calibrate_threshold needs at least one normal score")
    k = math.floor(false_alarm_rate * len(s) + 1e-9)
    if k == 0:
        return float(s[-1])
    return float(0.5 * (s[-k - 1] + s[-k]))


def detection_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUROC (all defects and each type against the normals), false-alarm and detection rates."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    normal = labels == NORMAL
    flagged = scores > threshold
    types = [t for t in ANOMALY_TYPES if (labels == t).any()]
    return {
        "n": len(labels),
        "n_normal": int(normal.sum()),
        "n_per_type": {t: int((labels == t).sum()) for t in types},
        "auroc": round(auroc(~normal, scores), 4),
        "auroc_per_type": {
            t: round(auroc(labels[normal | (labels == t)] == t, scores[normal | (labels == t)]), 4)
            for t in types
        },
        "threshold": threshold,
        "false_alarm_rate": round(float(flagged[normal].mean()), 4),
        "detection_rate": round(float(flagged[~normal].mean()), 4),
        "detection_rate_per_type": {t: round(float(flagged[labels == t].mean()), 4) for t in types},
    }


def score_images(
    detector: OtolithDetector,
    images: np.ndarray,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N,) and heat maps (N x h x w) of BGR photographs, through the serving head."""
    scores, heatmaps = [], []
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        results = detector.predict(np.stack([detector.model_input(im) for im in part]))
        scores.extend(r.score for r in results)
        heatmaps.extend(r.heatmap for r in results)
        if progress is not None:
            progress(len(part))
    return np.array(scores, np.float64), np.stack(heatmaps)


def draw_roc(
    path: Path,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    title: str,
    operating_point: tuple[float, float] | None = None,
) -> Path:
    """ROC curves (``name -> (labels 1 = anomaly, scores)``) on one OpenCV plot."""
    side, left, top, legend = 420, 60, 40, 190
    canvas = np.full((top + side + 50, left + side + legend, 3), 255, np.uint8)

    def xy(fpr: float, tpr: float) -> tuple[int, int]:
        return round(left + fpr * side), round(top + (1 - tpr) * side)

    for tick in np.linspace(0, 1, 6):
        cv2.line(canvas, xy(tick, 0), xy(tick, 1), (225, 225, 225), 1)
        cv2.line(canvas, xy(0, tick), xy(1, tick), (225, 225, 225), 1)
        _text(canvas, f"{tick:.1f}", (xy(tick, 0)[0] - 10, top + side + 16), 0.38)
        _text(canvas, f"{tick:.1f}", (left - 30, xy(0, tick)[1] + 4), 0.38)
    cv2.rectangle(canvas, xy(0, 1), xy(1, 0), _BLACK, 1)
    cv2.line(canvas, xy(0, 0), xy(1, 1), (170, 170, 170), 1, cv2.LINE_AA)
    palette = [(180, 80, 20), (40, 40, 200), (40, 150, 40), (0, 140, 230), (150, 60, 150)]
    for i, (name, (labels, scores)) in enumerate(curves.items()):
        fpr, tpr = roc_curve(labels, scores)
        points = np.array([xy(f, t) for f, t in zip(fpr, tpr, strict=True)], np.int32)
        colour = palette[i % len(palette)]
        cv2.polylines(canvas, [points], False, colour, 2 if i == 0 else 1, cv2.LINE_AA)
        y = top + 20 + 20 * i
        cv2.line(canvas, (left + side + 12, y - 4), (left + side + 32, y - 4), colour, 2)
        _text(canvas, f"{name} {auroc(labels, scores):.3f}", (left + side + 38, y), 0.38)
    if operating_point is not None:
        cv2.circle(canvas, xy(*operating_point), 5, (0, 0, 220), 2, cv2.LINE_AA)
    _text(canvas, title, (8, 22), 0.45)
    _text(canvas, "false-alarm rate", (left + side // 2 - 60, top + side + 38), 0.42)
    _text(canvas, "detection rate", (4, top - 8), 0.42)
    return _write(path, canvas)


def draw_heatmaps(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    heatmaps: np.ndarray,
    threshold: float,
    *,
    per_row: int = 5,
    tile: int = 160,
) -> Path:
    """A grid: one row per class (normal, then each defect), heat maps blended over images."""
    rows = []
    for name in [NORMAL, *ANOMALY_TYPES]:
        picks = np.flatnonzero(labels == name)[:per_row]
        tiles = []
        for i in picks:
            over = overlay_heatmap(images[i], heatmaps[i], threshold)
            over = cv2.resize(over, (tile, tile), interpolation=cv2.INTER_AREA)
            colour = (0, 0, 230) if scores[i] > threshold else (0, 170, 0)
            cv2.rectangle(over, (0, 0), (tile - 1, tile - 1), colour, 3)
            _text(over, f"{scores[i]:.2f}", (6, tile - 8), 0.45, (255, 255, 255))
            tiles.append(over)
        tiles += [np.full((tile, tile, 3), 255, np.uint8)] * (per_row - len(tiles))
        label = np.full((tile, 110, 3), 255, np.uint8)
        _text(label, name, (6, tile // 2), 0.5)
        rows.append(np.concatenate([label, *tiles], 1))
    head = np.full((34, rows[0].shape[1], 3), 255, np.uint8)
    _text(head, f"threshold {threshold:.3f}: red = flagged, green = passed", (8, 22), 0.5)
    return _write(path, np.concatenate([head, *rows], 0))


def evaluate_otolith(
    model_dir: Path,
    out_dir: Path | None = None,
    *,
    seed: int | None = None,
    n: int | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """Score the artifact in ``model_dir`` on its held-out synthetic test set; write results.

    The test set is the one the card records (seed, sizes) unless ``seed`` or ``n`` (number
    of normal images; each defect gets a quarter as many) say otherwise. Writes
    ``evaluation.json``, ``roc.png`` and ``heatmaps.png`` into ``out_dir`` (default:
    ``model_dir``) and returns the metrics.
    """
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    card = load_card(model_dir)
    test = card.training.data["test"]
    seed = int(test["seed"]) if seed is None else seed
    n_normal = int(test["n_normal"]) if n is None else n
    n_per_type = int(test["n_per_anomaly"]) if n is None else max(1, n // 4)
    images, labels = make_dataset(
        np.random.default_rng(seed),
        n_normal=n_normal,
        n_per_anomaly=n_per_type,
        size=int(card.training.data["render_size"]),
    )
    backend = open_backend("onnxruntime", model_dir / ONNX_FILE, threads=threads)
    try:
        detector = OtolithDetector(backend, card, max_batch=32)
        scores, heatmaps = score_images(detector, images)
    finally:
        backend.close()
    metrics = detection_metrics(labels, scores, detector.threshold) | {"seed": seed}
    write_figures(out_dir, images, labels, scores, heatmaps, detector.threshold, title=card.name)
    (out_dir / EVALUATION_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def write_figures(
    out_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    heatmaps: np.ndarray,
    threshold: float,
    *,
    title: str,
    extra_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """``roc.png`` (all defects, each type, any extra curves) and ``heatmaps.png``."""
    anomalous = labels != NORMAL
    curves = {"all defects": (anomalous, scores)} | dict(extra_curves or {})
    normal = labels == NORMAL
    for name in ANOMALY_TYPES:
        keep = normal | (labels == name)
        if (labels == name).any():
            curves[name] = (labels[keep] == name, scores[keep])
    point = (
        float((scores[normal] > threshold).mean()),
        float((scores[anomalous] > threshold).mean()),
    )
    draw_roc(out_dir / ROC_FILE, curves, title=f"{title}: test ROC (AUROC)", operating_point=point)
    draw_heatmaps(out_dir / HEATMAPS_FILE, images, labels, scores, heatmaps, threshold)


def _text(canvas: np.ndarray, text: str, at: tuple[int, int], scale: float, colour=_BLACK) -> None:
    cv2.putText(canvas, text, at, _FONT, scale, colour, 1, cv2.LINE_AA)


def _write(path: Path, canvas: np.ndarray) -> Path:
    if not cv2.imwrite(str(path), canvas):
        msg = f"could not write {path}; check that the directory is writable"
        raise OSError(msg)
    return path


__all__ = [
    "EVALUATION_FILE",
    "HEATMAPS_FILE",
    "ROC_FILE",
    "auroc",
    "calibrate_threshold",
    "detection_metrics",
    "draw_heatmaps",
    "draw_roc",
    "evaluate_otolith",
    "roc_curve",
    "score_images",
    "write_figures",
]
