"""The committed demo models do what their cards say, re-scored here on fresh data.

Each committed ONNX artifact (plankton, the otolith detector and its two view variants, fish)
is scored through ONNX Runtime on a small synthetic draw with a seed no card used
(:mod:`tests.models.rescore`, seconds each), and the card's headline metrics must agree with
what it scores within :data:`TOLERANCE`: a card edited by hand (a macro-F1 moved by 0.05), or
a graph replaced without its card, fails here. The targets of issue 3 are checked on the
fresh numbers too: plankton macro-F1 >= 0.95 (card), otolith image AUROC >= 0.97 with the
same-input ablation reported, fish top-1 >= 0.95 on known individuals and new-vs-known
AUROC >= 0.90. ``seawatch evaluate`` wrote each ``evaluation.json`` from the same artifact,
so the card and it must still agree exactly.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.models.rescore import rescore_fish, rescore_otolith, rescore_plankton

MODELS = Path(__file__).resolve().parents[2] / "models"
# The fresh draws differ from the cards' test sets by sampling noise (at most 0.013 on the
# committed models); 0.025 leaves room for that and none for a 0.05 edit.
TOLERANCE = 0.025
_rescore_otolith = functools.cache(rescore_otolith)  # the 8-view graph: once, ~10 s


def _read(task: str, name: str) -> dict[str, Any]:
    path = MODELS / task / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    return json.loads(path.read_text())


def _agrees(card_value: float, fresh: float, what: str) -> None:
    assert abs(card_value - fresh) <= TOLERANCE, (
        f"{what}: the card says {card_value}, the committed graph scores {fresh} on a fresh "
        f"draw (tolerance {TOLERANCE}): the card does not describe this graph"
    )


def test_plankton_card_matches_a_fresh_rescoring_and_reaches_the_target() -> None:
    card, evaluation = _read("plankton", "card.json"), _read("plankton", "evaluation.json")
    fresh = rescore_plankton(MODELS / "plankton")
    assert fresh["n"] >= 1000
    _agrees(card["metrics"]["macro_f1"], fresh["macro_f1"], "plankton macro-F1")
    _agrees(card["metrics"]["accuracy"], fresh["accuracy"], "plankton accuracy")
    assert card["metrics"]["macro_f1"] == evaluation["macro_f1"]
    # the 0.95 target is on ROIs and threshold cuts (the fresh draw's mix); crops that the
    # segmentation model cuts from hard frames (a third test source since issue 27) are
    # scored beside them, not held to it
    by_source = card["metrics"]["by_source"]
    assert by_source["roi"]["macro_f1"] >= 0.95 and by_source["segmented"]["macro_f1"] >= 0.93
    assert fresh["macro_f1"] >= 0.95 - TOLERANCE
    assert card["metrics"]["ece"] < card["metrics"]["ece_uncalibrated"]  # calibration helped


@pytest.mark.parametrize("graph", ["otolith", "otolith/views4", "otolith/views1"])
def test_otolith_card_matches_a_fresh_rescoring(graph: str) -> None:
    """The trained 8-view graph and each view variant, each against its own card (its own
    threshold: the false-alarm rate at it stays near the calibrated 1 %)."""
    card = _read(graph, "card.json")
    fresh = _rescore_otolith(MODELS / graph)
    _agrees(card["metrics"]["auroc"], fresh["auroc"], f"{graph} image AUROC")
    assert fresh["false_alarm_rate"] <= 0.05, fresh
    threshold = card["thresholds"]["anomaly_score"]
    assert card["metrics"]["threshold"] == pytest.approx(threshold, abs=1e-5)


def test_otolith_reaches_the_target_with_the_ablation_reported() -> None:
    card, evaluation = _read("otolith", "card.json"), _read("otolith", "evaluation.json")
    metrics = card["metrics"]
    assert metrics["auroc"] == evaluation["auroc"] >= 0.97
    assert _rescore_otolith(MODELS / "otolith")["auroc"] >= 0.97 - TOLERANCE
    assert metrics["n_normal"] == evaluation["n_normal"] >= 400
    assert set(metrics["auroc_per_type"]) == {"vaterite", "broken", "crack", "debris", "blur"}
    assert 0.5 < metrics["ablation"]["auroc"] <= 1.0  # reported, and better than chance
    assert "rgb" in metrics["ablation"]["student_input"]
    # the threshold was calibrated for 1 % false alarms on held-out normals; the test normals
    # may exceed it by chance, not by much
    assert metrics["calibration"]["target_false_alarm_rate"] == 0.01
    assert metrics["false_alarm_rate"] <= 0.03


def test_fish_card_matches_a_fresh_rescoring_and_reaches_the_targets() -> None:
    card, evaluation = _read("fish", "card.json"), _read("fish", "evaluation.json")
    known, open_set = card["metrics"]["known"], card["metrics"]["open_set"]
    fresh = rescore_fish(MODELS / "fish")
    _agrees(known["all"]["top1"], fresh["top1"], "fish top-1 on known individuals")
    _agrees(open_set["new_vs_known_auroc"], fresh["new_vs_known_auroc"], "fish new-vs-known")
    assert known == evaluation["known"] and open_set == evaluation["open_set"]
    assert known["all"]["top1"] >= 0.95 and fresh["top1"] >= 0.95 - TOLERANCE
    assert known["all"]["top1"] <= known["all"]["top5"]
    assert open_set["new_vs_known_auroc"] >= 0.90
