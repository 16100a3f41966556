"""The "most likely wrong" score: least confidence first, the same one object at a time."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.ranking import RULE, wrongness, wrongness_of


def test_orders_by_least_confidence_not_by_margin():
    # (confidence, runner-up): a margin rule would put b (0.70 - 0.29) before a (0.55 - 0.05)
    confidence = np.array([0.55, 0.70, 0.99, 0.30, 0.90])
    second = np.array([0.05, 0.29, 0.01, 0.25, 0.02])
    score = wrongness(confidence, second)
    assert RULE == "least_confidence"
    assert np.argsort(-score, kind="stable").tolist() == [3, 0, 1, 4, 2]
    np.testing.assert_allclose(score, 1.0 - confidence)


def test_every_unknown_comes_before_every_named_object():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 500)
    second = (1.0 - confidence) * rng.uniform(0, 1, 500)
    threshold = 0.5793  # the committed card's unknown_confidence
    order = np.argsort(-wrongness(confidence, second), kind="stable")
    unknown = confidence[order] < threshold
    assert unknown[: unknown.sum()].all()


def test_scalar_agrees_with_vectorised():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(10, 0.3), 200)
    top = np.sort(probs, axis=1)[:, ::-1][:, :3]
    vector = wrongness(top[:, 0], top[:, 1])
    for row, expected in zip(top, vector, strict=True):
        pairs = [(f"taxon{j}", round(float(p), 4)) for j, p in enumerate(row)]
        assert wrongness_of(float(row[0]), pairs) == pytest.approx(float(expected), abs=1e-12)
    assert wrongness_of(0.8, [("copepod", 0.8)]) == pytest.approx(0.2)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        wrongness(np.array([0.5, 0.6]), np.array([0.1]))
