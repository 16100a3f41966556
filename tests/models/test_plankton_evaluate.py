"""Evaluation metrics and the unknown threshold, on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.plankton.evaluate import (
    classification_metrics,
    draw_confusion,
    unknown_threshold,
)
from seawatch.models.plankton.synthetic import TAXA


def test_metrics_match_a_hand_computed_confusion():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    m = classification_metrics(y_true, y_pred, list(TAXA))
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    first = m["per_class"][TAXA[0]]
    assert (first["precision"], first["recall"]) == pytest.approx((2 / 3, 2 / 3), abs=1e-4)
    assert m["per_class"][TAXA[2]]["recall"] == 0.0
    assert m["confusion"][2][0] == 1 and sum(map(sum, m["confusion"])) == 6
    # macro-F1 averages the three classes present, not the seven absent ones
    f1 = [m["per_class"][TAXA[i]]["f1"] for i in range(3)]
    assert m["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-3)


def test_unknown_threshold_gives_up_about_two_percent_of_correct_answers():
    rng = np.random.default_rng(0)
    n = 2000
    y_true = rng.integers(0, 3, n)
    confidence = rng.uniform(0.4, 1.0, n)
    probs = np.zeros((n, 3))
    wrong = rng.random(n) < 0.1
    predicted = np.where(wrong, (y_true + 1) % 3, y_true)
    probs[np.arange(n), predicted] = confidence
    threshold, report = unknown_threshold(probs, y_true)
    correct = ~wrong
    rejected_correct = np.mean(confidence[correct] < threshold)
    assert rejected_correct == pytest.approx(0.02, abs=0.005)
    assert 0 < report["coverage"] < 1 and report["accepted_accuracy"] > 0.85


def test_confusion_plot_is_written(tmp_path):
    confusion = np.eye(len(TAXA), dtype=np.int64) * 10
    path = draw_confusion(confusion, tmp_path / "c.png", title="t", class_names=list(TAXA))
    assert path.stat().st_size > 1000
