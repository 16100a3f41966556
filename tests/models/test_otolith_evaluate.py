"""Otolith evaluation maths (numpy only): AUROC, ROC curve, threshold calibration, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.otolith.evaluate import (
    auroc,
    calibrate_threshold,
    detection_metrics,
    roc_curve,
)
from seawatch.models.otolith.synthetic import ANOMALY_TYPES, NORMAL


def test_auroc_known_cases() -> None:
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # 4 pairs (neg, pos): (0.1,0.35) (0.1,0.8) (0.4,0.8) win, (0.4,0.35) loses -> 3/4
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # one tie between classes counts a half: pairs (1,1)=0.5, (1,3)=1, (2,1)=0, (2,3)=1
    assert auroc([0, 0, 1, 1], [1.0, 2.0, 1.0, 3.0]) == pytest.approx(2.5 / 4)


def test_auroc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # many ties
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean()
    assert auroc(labels, scores) == pytest.approx(pairwise, abs=1e-12)


def test_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([1, 1], [0.2, 0.3])


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auroc() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(200) < 0.4
    scores = rng.normal(labels * 1.5, 1.0)
    fpr, tpr = roc_curve(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(auroc(labels, scores), abs=1e-9)


@pytest.mark.parametrize("n", [50, 99, 500, 1234])
@pytest.mark.parametrize("far", [0.001, 0.01, 0.05])
def test_threshold_meets_the_target_rate_on_its_calibration_set(n: int, far: float) -> None:
    scores = np.random.default_rng(n).gamma(2.0, 1.0, n)
    threshold = calibrate_threshold(scores, far)
    rate = float((scores > threshold).mean())
    assert rate <= far
    assert rate == int(far * n) / n  # uses the whole budget: not needlessly strict


def test_threshold_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        calibrate_threshold(np.ones(10), 1.5)


def test_detection_metrics_count_flags_per_type() -> None:
    labels = np.array([NORMAL] * 4 + list(ANOMALY_TYPES))
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.5, 2.0, 0.05, 3.0])
    m = detection_metrics(labels, scores, threshold=0.4)
    assert m["false_alarm_rate"] == 0.25
    assert m["detection_rate_per_type"] == {
        "vaterite": 1.0,
        "broken": 1.0,
        "crack": 1.0,
        "debris": 0.0,
        "blur": 1.0,
    }
    assert m["detection_rate"] == 0.8
    assert m["auroc_per_type"]["debris"] == 0.0
    assert m["auroc_per_type"]["blur"] == 1.0
    assert m["n_per_type"] == dict.fromkeys(ANOMALY_TYPES, 1)
