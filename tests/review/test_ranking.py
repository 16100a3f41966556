"""The "most likely wrong" score: least confidence first (the fallback), the same one object
at a time; the fitted per-model calibration (RankingCalibration) on crafted inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seawatch.contracts.ranking import (
    NUMERIC_FEATURES,
    RULE,
    RankingCalibration,
    ranking_features,
    wrongness,
    wrongness_of,
)


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


TAXA = ("copepod", "detritus", "radiolarian", "unknown")


def _calibration(weights: dict[str, float], bias: float = 0.0) -> RankingCalibration:
    """Weights by feature name (``log(1-p1)``, ..., ``taxon=copepod``, ...), 0 elsewhere."""
    names = [*NUMERIC_FEATURES, *(f"taxon={t}" for t in TAXA)]
    assert set(weights) <= set(names), set(weights) - set(names)
    return RankingCalibration(
        taxa=TAXA, weights=tuple(weights.get(n, 0.0) for n in names), bias=bias
    )


def test_features_of_a_crafted_object():
    x = ranking_features(
        np.array([0.7]), np.array([[0.7, 0.2, 0.1]]), ["detritus"], np.array([True]), TAXA
    )
    entropy = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    expected = [math.log(0.3 + 1e-6), math.log(0.5 + 1e-6), entropy, 1.0, 0, 1, 0, 0]
    np.testing.assert_allclose(x[0], expected, rtol=1e-9, atol=1e-7)
    # a single candidate: no runner-up (margin = p1), the rest of the mass as one outcome
    one = ranking_features(np.array([0.6]), np.array([[0.6]]), ["unknown"], [False], TAXA)
    rest = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    np.testing.assert_allclose(one[0, :4], [math.log(0.4 + 1e-6), math.log(0.6 + 1e-6), rest, 0])
    assert one[0, 4:].tolist() == [0, 0, 0, 1]


def test_score_is_the_logistic_of_the_weighted_features():
    cal = _calibration({"log(1-p1)": 1.0, "full_frame": 2.0, "taxon=radiolarian": 0.5}, bias=-1.0)
    z = 1.0 * math.log(0.1 + 1e-6) + 2.0 + 0.5 - 1.0
    got = cal.score(0.9, [("radiolarian", 0.9), ("copepod", 0.05)], "radiolarian", True)
    assert got == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-12)
    assert 0.0 < got < 1.0


def test_crafted_orderings():
    cal = _calibration({"log(1-p1)": 1.0, "full_frame": 1.5, "taxon=radiolarian": 3.0})
    pairs = [("copepod", 0.8), ("detritus", 0.15)]
    # less confident: more likely wrong
    assert cal.score(0.6, [("copepod", 0.6)], "copepod", False) > cal.score(
        0.95, [("copepod", 0.95)], "copepod", False
    )
    # same answer, segmented out of a full frame: more likely wrong than from a ROI frame
    assert cal.score(0.8, pairs, "copepod", True) > cal.score(0.8, pairs, "copepod", False)
    # a taxon the model often gets wrong outranks a more uncertain answer of another taxon
    assert cal.score(0.97, [("radiolarian", 0.97)], "radiolarian", False) > cal.score(
        0.8, pairs, "copepod", False
    )
    # a taxon the calibration does not know gets no taxon term (the baseline)
    assert cal.score(0.8, pairs, "noctiluca", False) == cal.score(0.8, pairs, "copepod", False)


def test_scalar_and_vectorised_scores_agree_and_extra_candidates_are_ignored():
    rng = np.random.default_rng(3)
    cal = RankingCalibration(
        taxa=TAXA, weights=tuple(rng.normal(size=len(NUMERIC_FEATURES) + len(TAXA))), bias=0.3
    )
    probs = np.sort(rng.dirichlet(np.full(6, 0.4), 100), axis=1)[:, ::-1]
    top = probs[:, :3].round(4)
    taxon = rng.choice(TAXA, 100)
    full = rng.random(100) < 0.5
    many = cal.scores(probs[:, 0], top, taxon, full)
    for i in range(100):
        pairs = [(f"t{j}", float(p)) for j, p in enumerate(top[i])]
        one = cal.score(float(probs[i, 0]), pairs, str(taxon[i]), bool(full[i]))
        assert one == pytest.approx(float(many[i]), abs=1e-12)
    # fitted on the top 3: a daemon storing the top 5 scores the same
    five = cal.scores(probs[:, 0], probs[:, :5].round(4), taxon, full)
    np.testing.assert_allclose(five, many, atol=1e-12)


def test_calibration_dict_round_trip():
    cal = _calibration({"log(1-p1)": 1.1, "log(p1-p2)": -0.6, "full_frame": 0.2}, bias=0.4)
    cal = RankingCalibration(cal.taxa, cal.weights, cal.bias, top_k=3, fitted={"seed": 7})
    data = json.loads(json.dumps(cal.to_dict()))
    assert data["rule"] == "fitted_logistic"
    assert data["features"][: len(NUMERIC_FEATURES)] == list(NUMERIC_FEATURES)
    again = RankingCalibration.from_dict(data)
    assert again == cal
    assert again.to_dict() == data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": [1.0, 2.0]}, "weights"),
        ({"rule": "magic"}, "unknown ranking rule"),
        ({"features": ["1-p1"]}, "refit"),
        ({"bias": float("nan")}, "finite"),
        ({"taxa": ["a", "a", "b", "c"]}, "twice"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_a_malformed_calibration_is_refused(change, message):
    data = _calibration({}, bias=0.1).to_dict() | change
    with pytest.raises(ValueError, match=message):
        RankingCalibration.from_dict(data)
    with pytest.raises(ValueError, match="lacks"):
        RankingCalibration.from_dict({"taxa": []})


def test_fallback_without_a_calibration_is_least_confidence():
    # what the store computes for an object whose record carries no fitted score
    assert wrongness_of(0.73, [("copepod", 0.73), ("detritus", 0.2)]) == pytest.approx(0.27)
