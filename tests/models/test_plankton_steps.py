"""``seawatch train plankton --steps``: a user's data get a schedule sized for the optimiser
steps asked for (the few-labels benchmark's 900-step schedule, issue 24), recorded on the card."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import load_card
from seawatch.models.plankton.backbone import save_backbone
from seawatch.models.plankton.finetune import schedule_for
from seawatch.models.plankton.network import PlanktonNet
from tests.models.user_folders import write_folder

pytestmark = pytest.mark.train

CLASSES = {"copepod": ("copepod", 0.0), "diatom": ("diatom_chain", 0.0)}


def _train(tmp_path, *extra: str):
    folder = write_folder(tmp_path / "data", CLASSES, 6, seed=3)
    start = save_backbone(PlanktonNet(5), tmp_path / "bb", {"model": "t"})
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["train", "plankton", "--data-dir", str(folder), "--out", str(out), "--folds", "2",
         "--finetune", "linear", "--pretrained", str(start), "--device", "cpu", *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return load_card(out).metrics["fine_tuning"]


def test_the_schedule_aims_at_the_steps_asked_for(tmp_path):
    # 12 images, batch 16: one step an epoch, so epochs = steps (clipped to 10..300)
    tuned = _train(tmp_path, "--steps", "24")
    assert tuned["schedule"]["epochs"] == 24 and tuned["schedule"]["batch_size"] == 16
    assert "~24 steps" in tuned["rule"]
    assert schedule_for(12, target_steps=24).epochs == 24
    assert schedule_for(12, epochs=12, target_steps=24).epochs == 12  # --epochs wins


def test_steps_are_refused_without_the_users_data(tmp_path):
    result = CliRunner().invoke(cli, ["train", "plankton", "--out", str(tmp_path), "--steps", "9"])
    assert result.exit_code != 0 and "--steps sizes the schedule" in result.output
    zero = CliRunner().invoke(
        cli, ["train", "plankton", "--data-dir", str(tmp_path), "--steps", "0"]
    )
    assert zero.exit_code != 0 and "--steps" in zero.output


def test_views_are_refused_on_a_cross_validated_set(tmp_path):
    folder = write_folder(tmp_path / "data", CLASSES, 6, seed=3)
    result = CliRunner().invoke(
        cli,
        ["train", "plankton", "--data-dir", str(folder), "--out", str(tmp_path / "out"),
         "--folds", "2", "--views", "8", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code != 0 and "--views 8 is measured on a validation split" in result.output
    assert not (tmp_path / "out" / "model.onnx").exists()
