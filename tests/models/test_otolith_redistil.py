"""Re-distilling the otolith student on a user's normal specimens (``train otolith
--normal-dir``): the committed detector, normals of a synthetic "other lab" (another stain and
light), a small seconds-long schedule; AUROC on that lab's defects before and after."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import load_card
from seawatch.contracts.errors import ConfigError
from seawatch.models.otolith.calibrate import artifact_scores
from seawatch.models.otolith.evaluate import auroc
from seawatch.models.otolith.head import THRESHOLD_KEY
from seawatch.models.otolith.other_lab import other_lab_set
from seawatch.models.otolith.redistil import RedistilConfig, redistil
from seawatch.models.otolith.serving_views import serving_dir

pytestmark = pytest.mark.train

SEED = 5151  # development seed, outside the range reserved for final numbers
VIEWS = 1  # the cheapest graph keeps the test to seconds; the method is the same


def _write_normals(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = other_lab_set(np.random.default_rng(seed), n_normal=n)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def start() -> Path:
    committed = Path(__file__).resolve().parents[2] / "models" / "otolith"
    if not (committed / f"views{VIEWS}" / "card.json").is_file():
        pytest.fail(f"the committed otolith model (with views{VIEWS}/) is missing; make models")
    return committed


@pytest.fixture(scope="module")
def redistilled(start: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    normals = _write_normals(tmp_path_factory.mktemp("lab-normals"), 30, SEED)
    (normals / "notes.png").write_bytes(b"not an image")
    out = tmp_path_factory.mktemp("redistilled")
    result = CliRunner().invoke(
        cli,
        ["train", "otolith", "--normal-dir", str(normals), "--model", str(start), "--out",
         str(out), "--views", str(VIEWS), "--held-out", "0.34", "--steps", "24", "--far",
         "0.1", "--seed", "2", "--version", "0.6.0-lab"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "held-out normals" in result.output and "new threshold" in result.output
    return out


def test_redistillation_helps_on_the_other_labs_defects(start: Path, redistilled: Path) -> None:
    images, labels = other_lab_set(np.random.default_rng(SEED + 1), n_normal=16, n_per_anomaly=2)
    parent = serving_dir(start, load_card(start), VIEWS)
    before = artifact_scores(parent, load_card(parent), images)
    after = artifact_scores(redistilled, load_card(redistilled), images)
    defect = labels != "normal"
    auroc_before, auroc_after = auroc(defect, before), auroc(defect, after)
    # the committed student, distilled on the synthetic scanner, ranks this lab's defects
    # worse than chance; 24 steps on 20 of the lab's normals do not make it good (0.35 ->
    # 0.375 here; the benchmark's larger run is in the model README), but never worse
    assert auroc_after >= auroc_before, (auroc_before, auroc_after)


def test_the_new_release_records_its_data_and_threshold(start: Path, redistilled: Path) -> None:
    card = load_card(redistilled)  # validates, checks the graph's SHA-256
    parent = load_card(start)
    assert card.version == "0.6.0-lab" and card.release != parent.release
    assert card.onnx_sha256 != parent.onnx_sha256
    data = card.training.data
    assert (data["normal_specimens"], data["unreadable"]) == (30, 1)
    assert (data["train"], data["held_out"]) == (20, 10)
    done = card.metrics["redistillation"]
    # the old threshold flags nearly every normal of this lab; the new one at most its target
    assert done["false_alarm_rate_before"] > 0.5
    assert done["false_alarm_rate_after"] <= 0.1
    assert done["score_median_after"] < done["score_median_before"]
    # the student learnt the lab's normals: the distillation loss on the held-out ones fell
    first, last = done["validation_loss_first_last"]
    assert last < 0.5 * first, (first, last)
    assert card.thresholds[THRESHOLD_KEY] > 0
    assert card.training.model_extra["plan"]["views"] == VIEWS
    assert (redistilled / "teacher.pt").is_file()


def test_too_few_normals_or_a_bad_output_fail_naming_the_fix(start: Path, tmp_path: Path) -> None:
    normals = _write_normals(tmp_path / "n", 20, SEED + 2)
    with pytest.raises(ConfigError, match="needs 20 or more"):
        redistil(start, normals, tmp_path / "o", config=RedistilConfig(held_out=0.6))
    with pytest.raises(ConfigError, match="is the start model"):
        redistil(start, normals, start)
    result = CliRunner().invoke(
        cli, ["train", "otolith", "--normal-dir", str(normals), "--out", str(tmp_path), "--quick"]
    )
    assert result.exit_code != 0 and "not --normal-dir" in result.output
