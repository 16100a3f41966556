"""The committed demo models meet issue 3's targets, by their own cards and evaluations.

Each card's test metrics must equal what ``seawatch evaluate`` wrote beside it (the two are
produced by one ``make models``), and reach the targets: plankton macro-F1 >= 0.95, otolith
image AUROC >= 0.97 with the same-input ablation reported, fish top-1 >= 0.95 on known
individuals and new-vs-known AUROC >= 0.90. A model retrained below a target, or a card edited
by hand, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"


def _read(task: str, name: str) -> dict[str, Any]:
    path = MODELS / task / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    return json.loads(path.read_text())


def test_plankton_macro_f1_reaches_the_target() -> None:
    card, evaluation = _read("plankton", "card.json"), _read("plankton", "evaluation.json")
    assert card["metrics"]["macro_f1"] == evaluation["macro_f1"] >= 0.95
    assert card["metrics"]["ece"] < card["metrics"]["ece_uncalibrated"]  # calibration helped


def test_otolith_auroc_reaches_the_target_with_the_ablation_reported() -> None:
    card, evaluation = _read("otolith", "card.json"), _read("otolith", "evaluation.json")
    metrics = card["metrics"]
    assert metrics["auroc"] == evaluation["auroc"] >= 0.97
    assert metrics["n_normal"] == evaluation["n_normal"] >= 400
    assert set(metrics["auroc_per_type"]) == {"vaterite", "broken", "crack", "debris", "blur"}
    assert 0.0 < metrics["ablation"]["auroc"] <= 1.0
    assert "rgb" in metrics["ablation"]["student_input"]
    # the threshold was calibrated for 1 % false alarms on held-out normals; the test normals
    # may exceed it by chance, not by much
    assert metrics["calibration"]["target_false_alarm_rate"] == 0.01
    assert metrics["false_alarm_rate"] <= 0.03


def test_fish_reidentification_reaches_the_targets() -> None:
    card, evaluation = _read("fish", "card.json"), _read("fish", "evaluation.json")
    known, open_set = card["metrics"]["known"], card["metrics"]["open_set"]
    assert known == evaluation["known"] and open_set == evaluation["open_set"]
    assert known["all"]["top1"] >= 0.95
    assert known["all"]["top1"] <= known["all"]["top5"]
    assert open_set["new_vs_known_auroc"] >= 0.90
