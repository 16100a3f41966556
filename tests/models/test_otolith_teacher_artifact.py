"""The standalone otolith teacher (`train otolith-teacher`) and distilling from it (--quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from click.testing import CliRunner

from seawatch.contracts.card import load_card
from seawatch.contracts.errors import ConfigError
from seawatch.models.otolith.command import train_command, train_teacher_command
from seawatch.models.otolith.plan import QUICK, Plan
from seawatch.models.otolith.teacher_artifact import (
    LOSS_FILE,
    TEACHER_CARD,
    check_compatible,
    read_teacher_card,
    sha256,
)
from seawatch.models.otolith.train import train_otolith

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --quick teacher made through the click command, with 2 hard-negative epochs."""
    out = tmp_path_factory.mktemp("teacher")
    args = ["--out", str(out), "--quick", "--device", "cpu", "--hard-epochs", "2"]
    result = CliRunner().invoke(train_teacher_command, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "hard_epochs=2" in result.output and "sha256=" in result.output
    return out


def test_the_card_describes_the_weights_and_how_they_were_made(teacher_dir: Path) -> None:
    card = read_teacher_card(teacher_dir / "teacher.pt")
    assert card is not None
    assert card.weights_sha256 == sha256(teacher_dir / "teacher.pt")
    assert card.widths == QUICK.widths and card.depth == QUICK.teacher_depth
    assert card.input_size == QUICK.input_size
    assert card.epochs == QUICK.teacher_epochs and card.hard_epochs == 2
    assert [row["hard"] for row in card.history] == [False] * card.epochs + [True] * 2
    assert card.command.endswith("--hard-epochs 2 --quick")
    assert all(0.0 < m < 1.0 for m in card.rgb_mean) and all(s > 0 for s in card.rgb_std)
    check_compatible(card, QUICK, teacher_dir / "teacher.pt")  # the plan it was made for
    assert (teacher_dir / LOSS_FILE).stat().st_size > 1000


def test_the_detector_distils_from_it_and_records_its_provenance(
    teacher_dir: Path, tmp_path: Path
) -> None:
    weights = teacher_dir / "teacher.pt"
    args = ["--out", str(tmp_path), "--quick", "--device", "cpu", "--teacher-weights", str(weights)]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    card = load_card(tmp_path)
    teacher = card.training.teacher
    assert teacher["pretrained"]["weights_sha256"] == sha256(weights)
    assert teacher["pretrained"]["hard_epochs"] == 2
    assert "otolith-teacher" in teacher["pretrained"]["command"]
    # the teacher's own normalisation, and its weights and card copied byte for byte
    pretrained = read_teacher_card(weights)
    assert pretrained is not None
    assert card.input.mean == pytest.approx(pretrained.rgb_mean)
    assert sha256(tmp_path / "teacher.pt") == sha256(weights)
    assert read_teacher_card(tmp_path / "teacher.pt") == pretrained
    assert card.files["teacher_card"] == TEACHER_CARD


def test_a_teacher_for_another_architecture_fails_before_anything_is_written(
    teacher_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"widths=.*otolith-teacher"):
        train_otolith(out, plan=Plan(), teacher_weights=teacher_dir / "teacher.pt")
    assert not out.exists()


def test_replaced_weights_or_a_broken_card_fail_clearly(teacher_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "teacher.pt"
    copy.write_bytes((teacher_dir / "teacher.pt").read_bytes() + b"\0")
    (tmp_path / TEACHER_CARD).write_text((teacher_dir / TEACHER_CARD).read_text())
    with pytest.raises(ConfigError, match="replaced after pretraining"):
        read_teacher_card(copy)
    (tmp_path / TEACHER_CARD).write_text(json.dumps({"widths": [8]}))
    with pytest.raises(ConfigError, match="not a teacher card"):
        read_teacher_card(copy)
    (tmp_path / TEACHER_CARD).unlink()
    assert read_teacher_card(copy) is None, "a bare state_dict has no card"


def test_a_run_that_pretrains_its_own_teacher_drops_a_stale_card(
    teacher_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / TEACHER_CARD).write_text((teacher_dir / TEACHER_CARD).read_text())
    card = train_otolith(tmp_path, quick=True, command="test")
    assert not (tmp_path / TEACHER_CARD).exists()
    assert "pretrained here" in card.training.teacher["source"]


def test_bad_epochs_are_refused_by_the_command(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--quick", "--hard-epochs", "-1"]
    result = CliRunner().invoke(train_teacher_command, args)
    assert result.exit_code == 2 and "--hard-epochs" in result.output


MODELS = Path(__file__).resolve().parents[2] / "models"


def test_the_committed_detector_was_distilled_from_the_committed_teacher() -> None:
    weights = MODELS / "otolith-teacher" / "teacher.pt"
    teacher = read_teacher_card(weights)  # also checks the weights' SHA-256
    assert teacher is not None, "models/otolith-teacher has no teacher.json"
    assert len(teacher.history) == teacher.epochs + teacher.hard_epochs
    assert teacher.command.startswith("seawatch train otolith-teacher")
    card = json.loads((MODELS / "otolith" / "card.json").read_text())
    pretrained = card["training"]["teacher"]["pretrained"]
    assert pretrained["weights_sha256"] == teacher.weights_sha256
    assert "--teacher-weights models/otolith-teacher/teacher.pt" in card["training"]["command"]
    assert sha256(MODELS / "otolith" / "teacher.pt") == teacher.weights_sha256
    assert card["input"]["mean"] == pytest.approx(teacher.rgb_mean)
