"""Evaluation of a plankton classifier: metrics, the ``unknown`` threshold, the plots.

numpy, OpenCV and matplotlib (no torch), so the same code scores a model from ONNX Runtime:
``evaluation_report`` turns probabilities into the card's metrics, ``confusion.png`` and
``reliability.png``; ``evaluate_artifact`` runs a model directory on a labelled set first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.preprocess import nchw
from seawatch.models.plankton.calibration import (
    draw_reliability,
    expected_calibration_error,
    logits_from_probs,
    scale,
)
from seawatch.models.plankton.datasets import LabelledSet

REJECT_CORRECT = 0.02  # share of correct validation predictions the unknown threshold rejects


def source_metrics(
    probs: np.ndarray, y_true: np.ndarray, threshold: float, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 and the unknown rate of one part (e.g. ROI or segmented) of a set."""
    if not len(y_true):
        return {"n": 0}
    m = classification_metrics(y_true, probs.argmax(1), class_names)
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
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

    Macro-F1 averages over the classes present in ``y_true`` (a class absent from the set has
    no defined recall and would pull the mean to zero).
    """
    n_classes = len(class_names)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    per_class = {
        class_names[i]: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(actual[i]),
        }
        for i in range(n_classes)
    }
    present = actual > 0
    return {
        "n": len(y_true),
        "accuracy": round(float(tp.sum() / max(1, len(y_true))), 4),
        "macro_f1": round(float(f1[present].mean()) if present.any() else 0.0, 4),
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


def draw_confusion(
    confusion: np.ndarray, path: Path, *, title: str, class_names: list[str]
) -> Path:
    """A labelled, row-normalised confusion-matrix heat map drawn with OpenCV."""
    n, cell = len(confusion), 56 if len(confusion) <= 16 else 28
    names_px = max(110, 9 * max(len(c) for c in class_names) + 16)
    left, top = names_px, names_px + 20
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
        cv2.putText(canvas, class_names[i], (8, baseline), font, scale, black, 1, cv2.LINE_AA)
        cv2.putText(
            names,
            class_names[i],
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


def evaluation_report(
    probs: np.ndarray,
    data: LabelledSet,
    *,
    threshold: float,
    out_dir: Path,
    title: str,
    uncalibrated: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of ``probs`` on ``data`` and the two plots, written into ``out_dir``.

    Returns accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix, the
    ``unknown`` rate and accuracy of what is accepted at ``threshold``, ECE (and ECE before
    temperature scaling when ``uncalibrated`` is given) and the same per source.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, y = data.class_names, data.labels
    metrics = classification_metrics(y, probs.argmax(1), names)
    accepted = probs.max(1) >= threshold
    correct = probs.argmax(1) == y
    metrics |= {
        "unknown_rate": round(float(1.0 - accepted.mean()), 4) if len(y) else 0.0,
        "accepted_accuracy": round(float(correct[accepted].mean()), 4) if accepted.any() else 0.0,
        "ece": round(expected_calibration_error(probs, y), 4),
    }
    curves = {"calibrated": probs}
    if uncalibrated is not None:
        metrics["ece_uncalibrated"] = round(expected_calibration_error(uncalibrated, y), 4)
        curves = {"before temperature scaling": uncalibrated, "after": probs}
    if len(data.sources) > 1:
        metrics["by_source"] = {
            name: source_metrics(
                probs[data.source == code], y[data.source == code], threshold, names
            )
            for code, name in enumerate(data.sources)
        }
    draw_confusion(
        np.array(metrics["confusion"]),
        out_dir / "confusion.png",
        title=f"{title}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}",
        class_names=names,
    )
    draw_reliability(curves, y, out_dir / "reliability.png", title=f"{title}: reliability")
    return metrics


def evaluate_artifact(
    model_dir: Path, data: LabelledSet, out_dir: Path, *, title: str, batch: int = 256
) -> dict[str, Any]:
    """Run a model artifact through ONNX Runtime on ``data``; write the report and plots.

    The class names of ``data`` must be the card's (in any order; they are mapped by name).
    The graph returns temperature-scaled probabilities; the uncalibrated ones for the
    reliability diagram are recovered exactly as ``softmax(log p * T)``.
    """
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

    card = load_card(model_dir)
    unknown = sorted(set(data.class_names) - set(card.class_names))
    if unknown:
        msg = f"classes {unknown[:5]} of the evaluation data are not in the model's card"
        raise ConfigError(msg)
    remap = np.array([card.class_names.index(c) for c in data.class_names], np.int64)
    data = LabelledSet(
        data.images, remap[data.labels], list(card.class_names), data.source, data.sources
    )
    backend = OnnxRuntimeBackend(Path(model_dir) / ONNX_FILE, threads=2)
    try:
        probs = np.concatenate(
            [backend.run(nchw(data.images[i : i + batch])) for i in range(0, len(data), batch)]
        )
    finally:
        backend.close()
    threshold = float(card.thresholds.get("unknown_confidence", 0.0))
    temperature = float(card.thresholds.get("temperature", 1.0))
    before = scale(logits_from_probs(probs), 1.0 / temperature) if temperature != 1.0 else None
    metrics = evaluation_report(
        probs, data, threshold=threshold, out_dir=out_dir, title=title, uncalibrated=before
    )
    return {"model": f"{card.name} {card.version}", "threshold": threshold} | metrics


__all__ = [
    "REJECT_CORRECT",
    "classification_metrics",
    "draw_confusion",
    "evaluate_artifact",
    "evaluation_report",
    "source_metrics",
    "unknown_threshold",
]
