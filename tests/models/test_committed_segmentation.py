"""The committed segmentation artifact and its recorded benchmark agree with each other and
with the issue's rules (numbers are not re-measured here: `benchmarks/segmentation.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seawatch.contracts.card import load_card
from seawatch.models.segmentation.selftrain import ROWS

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "segmentation"
RESULT = ROOT / "benchmarks" / "results" / "segmentation.json"


@pytest.fixture(scope="module")
def card():
    if not (MODEL / "card.json").is_file():
        pytest.skip(f"{MODEL} is not in this checkout")
    return load_card(MODEL)  # also checks the graph's hash


def test_the_artifact_holds_every_row_and_development_figures_only(card):
    assert card.task == "segmentation" and (MODEL / card.files["quality"]).is_file()
    for key in [*dict(ROWS), "teacher"]:
        assert (MODEL / "ablation" / f"{key}.onnx").is_file()
    seeds = {
        card.training.data["pool"]["seed"],
        card.training.data["validation"]["seed"],
        card.training.data["unlabelled_extra"]["seed"],
    }
    assert all(7_100_000 <= s < 7_200_000 for s in seeds)  # never the reserved range
    assert set(card.metrics["rows"]) == {"threshold", *dict(ROWS)}


def test_the_recorded_criteria_follow_from_the_recorded_numbers(card):
    if not RESULT.is_file():
        pytest.skip("no final segmentation benchmark recorded")
    result = json.loads(RESULT.read_text())
    assert result["split"].startswith("final") and result["seeds"]["tiles"] == 7_900_070
    assert result["model"] == f"{card.name} {card.release}"
    miou = result["ablation_miou"]
    criteria = result["criteria"]
    kd, third, every = (
        miou["self_training_quality_kd"],
        miou["supervised_third"],
        miou["supervised_all"],
    )
    assert criteria["student_within_1_point_of_supervised_all"]["met"] == (kd >= every - 0.01)
    assert criteria["student_3_points_over_supervised_third"]["met"] == (kd >= third + 0.03)
    rho = result["quality"]["teacher"]["spearman"]
    assert criteria["quality_spearman_at_least_0.7"]["met"] == (rho >= 0.7)
    hard = result["daemon_hard_frames"]
    esd = criteria["median_esd_error_30_percent_lower"]
    assert esd["model"] == hard["model"]["median_relative_esd_error"]
    assert esd["met"] == (esd["model"] <= 0.7 * esd["threshold"])
