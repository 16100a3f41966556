"""Evaluation of a plankton classifier: metrics, the ``unknown`` threshold, a confusion plot.

numpy and OpenCV only (no torch), so the same code can score a model from ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seawatch.models.plankton.synthetic import TAXA

REJECT_CORRECT = 0.02  # share of correct validation predictions the unknown threshold rejects


def source_metrics(probs: np.ndarray, y_true: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, macro-F1 and the unknown rate of one part (ROI or segmented) of validation."""
    if not len(y_true):
        return {"n": 0}
    m = classification_metrics(y_true, probs.argmax(1), len(TAXA))
    confidence, correct = probs.max(1), probs.argmax(1) == y_true
    accepted = confidence >= threshold
    return {
        "n": m["n"],
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "recall": {name: c["recall"] for name, c in m["per_class"].items()},
        "mean_confidence": round(float(confidence.mean()), 4),
        "unknown_rate": round(float(1.0 - accepted.mean()), 4),
        "accepted_accuracy": round(float(correct[accepted].mean()) if accepted.any() else 0.0, 4),
    }


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    per_class = {
        TAXA[i]: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(actual[i]),
        }
        for i in range(n_classes)
    }
    return {
        "split": "validation (synthetic, held-out seed)",
        "n": len(y_true),
        "accuracy": round(float(tp.sum() / max(1, len(y_true))), 4),
        "macro_f1": round(float(f1.mean()), 4),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def unknown_threshold(probs: np.ndarray, y_true: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Top-1 confidence below which a prediction is reported as ``unknown``.

    Chosen as the ``REJECT_CORRECT`` quantile of the confidence of *correct* validation
    predictions: at most ~2% of right answers are given up, and the errors below it are caught.
    """
    confidence, correct = probs.max(1), probs.argmax(1) == y_true
    threshold = float(np.quantile(confidence[correct], REJECT_CORRECT)) if correct.any() else 0.5
    threshold = round(threshold, 4)
    accepted = confidence >= threshold
    wrong = ~correct
    return threshold, {
        "method": f"{REJECT_CORRECT:.0%} quantile of top-1 confidence of correct validation "
        "predictions",
        "coverage": round(float(accepted.mean()), 4),
        "accepted_accuracy": round(float(correct[accepted].mean()) if accepted.any() else 0.0, 4),
        "errors_caught": round(float((~accepted[wrong]).mean()) if wrong.any() else 1.0, 4),
    }


def draw_confusion(confusion: np.ndarray, path: Path, *, title: str) -> Path:
    """A labelled, row-normalised confusion-matrix heat map drawn with OpenCV."""
    n, cell, left, top = len(confusion), 56, 170, 190
    font, scale, black = cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0)
    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    heat = cv2.applyColorMap((rows * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    canvas = np.full((top + n * cell + 20, left + n * cell + 20, 3), 255, np.uint8)
    canvas[top : top + n * cell, left : left + n * cell] = cv2.resize(
        heat, (n * cell, n * cell), interpolation=cv2.INTER_NEAREST
    )
    names = np.full((n * cell, top - 30, 3), 255, np.uint8)  # column labels, rotated below
    for i in range(n):
        baseline = top + i * cell + cell // 2 + 5
        cv2.putText(canvas, TAXA[i], (8, baseline), font, scale, black, 1, cv2.LINE_AA)
        cv2.putText(
            names,
            TAXA[i],
            (8, i * cell + cell // 2 + 5),
            font,
            scale,
            black,
            1,
            cv2.LINE_AA,
        )
        for j in np.flatnonzero(confusion[i]):
            colour = black if rows[i, j] > 0.6 else (255, 255, 255)
            cv2.putText(
                canvas,
                str(int(confusion[i, j])),
                (left + j * cell + 8, baseline),
                font,
                scale,
                colour,
                1,
                cv2.LINE_AA,
            )
    canvas[30:top, left : left + n * cell] = cv2.rotate(names, cv2.ROTATE_90_COUNTERCLOCKWISE)
    cv2.putText(canvas, title, (8, 20), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(
        canvas,
        "rows: true, columns: predicted",
        (8, top - 8),
        font,
        0.4,
        (80, 80, 80),
        1,
        cv2.LINE_AA,
    )
    if not cv2.imwrite(str(path), canvas):
        msg = f"could not write {path}; check that the directory is writable"
        raise OSError(msg)
    return path


__all__ = [
    "REJECT_CORRECT",
    "classification_metrics",
    "draw_confusion",
    "source_metrics",
    "unknown_threshold",
]
