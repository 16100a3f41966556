"""Temperature scaling, ECE and the reliability diagram; class balance."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.plankton.balance import balanced_indices, effective_number_weights
from seawatch.models.plankton.calibration import (
    draw_reliability,
    expected_calibration_error,
    fit_temperature,
    logits_from_probs,
    nll,
    scale,
)


def _sampled(true_t: float, n: int = 6000, k: int = 5, seed: int = 0):
    """Labels drawn from softmax(z / true_t): the model's logits z are over-confident."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3.0, (n, k))
    probs = scale(logits, true_t)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return logits, labels


def test_temperature_scaling_recovers_the_true_temperature_and_lowers_nll():
    logits, labels = _sampled(2.5)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.08)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    before = expected_calibration_error(scale(logits, 1.0), labels)
    after = expected_calibration_error(scale(logits, t), labels)
    assert after < before / 2


def test_scaling_keeps_predictions_and_probs_round_trip_to_logits():
    logits, _ = _sampled(1.0, n=200)
    probs = scale(logits, 1.0)
    np.testing.assert_array_equal(scale(logits, 3.0).argmax(1), probs.argmax(1))
    np.testing.assert_allclose(scale(logits_from_probs(probs), 1.0), probs, atol=1e-9)


def test_ece_is_zero_when_confidence_equals_accuracy():
    probs = np.tile([0.8, 0.2], (100, 1))
    labels = np.array([0] * 80 + [1] * 20)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error(probs, np.ones(100, int)) == pytest.approx(0.8)


def test_reliability_diagram_is_written(tmp_path):
    logits, labels = _sampled(2.0, n=500)
    path = draw_reliability(
        {"before": scale(logits, 1.0), "after": scale(logits, 2.0)},
        labels,
        tmp_path / "r.png",
        title="t",
    )
    assert path.stat().st_size > 5000


def test_balanced_sampler_draws_classes_about_equally():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    drawn = labels[balanced_indices(labels, np.random.default_rng(0))]
    share = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(share, 1 / 3, atol=0.04)


def test_effective_number_weights_favour_rare_classes_and_skip_absent_ones():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    w = effective_number_weights(labels, 4)
    assert w[2] > w[1] > w[0] > 0 and w[3] == 0
    assert w[:3].mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="beta"):
        effective_number_weights(labels, 3, beta=1.0)
