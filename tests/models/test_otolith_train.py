"""Training the otolith detector end to end (--quick): artifact, card, ONNX, parity, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

import torch
from click.testing import CliRunner

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import BackendError, ConfigError
from seawatch.models.onnx_export import check_parity, export_onnx, ort_session
from seawatch.models.otolith.command import evaluate_command, train_command
from seawatch.models.otolith.evaluate import evaluate_otolith
from seawatch.models.otolith.head import prepare_otolith
from seawatch.models.otolith.network import FeatureNet, OtolithMKD, Student
from seawatch.models.otolith.synthetic import ANOMALY_TYPES, make_dataset, render_otolith
from seawatch.models.otolith.teacher import load_teacher
from seawatch.models.otolith.train import QUICK

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --quick artifact made through the click command, as a user would."""
    out = tmp_path_factory.mktemp("otolith")
    result = CliRunner().invoke(
        train_command, ["--out", str(out), "--quick", "--device", "cpu", "--far", "0.05"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "auroc=" in result.output
    return out


def _real(n: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kinds = [None, *ANOMALY_TYPES]
    images = [render_otolith(rng, size=96, anomaly=kinds[i % len(kinds)]) for i in range(n)]
    return np.stack([prepare_otolith(im, size) for im in images])


def test_card_loads_and_describes_the_artifact(artifact: Path) -> None:
    card = load_card(artifact)  # validates and checks the ONNX sha256
    assert card.task == "otolith"
    assert card.input.channels == 3 and card.input.size == QUICK.input_size
    assert len(card.input.mean) == len(card.input.std) == 3
    assert card.outputs == ["score", "heatmap"] and card.output == "score"
    assert card.thresholds["anomaly_score_target_far"] == 0.05
    assert card.thresholds["anomaly_score"] > 0
    assert card.training.command.endswith("--far 0.05 --quick")
    data = card.training.data
    seeds = {data[k]["seed"] for k in ("train", "validation", "calibration", "test")}
    assert len(seeds) == 4, "every set has its own seed"
    m = card.metrics
    assert set(m["detection_rate_per_type"]) == set(ANOMALY_TYPES)
    assert m["calibration"]["false_alarm_rate"] <= 0.05
    ablation = m["ablation"]  # the same-input student, on the same test set
    assert ablation["metrics_at_its_own_threshold"]["n"] == m["n"]
    assert ablation["auroc"] == ablation["metrics_at_its_own_threshold"]["auroc"]
    assert max(m["onnx_parity_max_abs_diff"].values()) < 1e-3
    for role, name in card.files.items():
        assert (artifact / name).stat().st_size > 100, role
    assert "pretrained here" in card.training.teacher["source"]
    phases = [row["hard"] for row in card.training.teacher["history"]]
    assert phases == [False] * QUICK.teacher_epochs + [True] * QUICK.teacher_hard_epochs
    assert f"averaged over {QUICK.views} " in card.architecture


def test_the_card_auroc_is_the_graphs_on_its_test_set_by_an_independent_count(
    artifact: Path,
) -> None:
    """The card's AUROC, recomputed here: the test set regenerated from the card's seed and
    sizes, scored by a bare ONNX Runtime session, ranked by scikit-learn. A quick run learns
    little (its AUROC is near 0.5), so only an exact recomputation bounds it."""
    from sklearn.metrics import roc_auc_score

    card = load_card(artifact)
    test = card.training.data["test"]
    images, labels = make_dataset(
        np.random.default_rng(test["seed"]),
        n_normal=test["n_normal"],
        n_per_anomaly=test["n_per_anomaly"],
        size=card.training.data["render_size"],
    )
    x = np.stack([prepare_otolith(im, card.input.size) for im in images])
    (scores,) = ort_session(artifact / ONNX_FILE).run(["score"], {"image": x})
    anomalous = labels != "normal"
    assert card.metrics["n"] == len(labels) and card.metrics["n_normal"] == (~anomalous).sum()
    assert card.metrics["auroc"] == pytest.approx(roc_auc_score(anomalous, scores), abs=1e-4)
    flagged = scores > card.thresholds["anomaly_score"]
    assert card.metrics["detection_rate"] == pytest.approx(flagged[anomalous].mean(), abs=1e-4)
    assert card.metrics["false_alarm_rate"] == pytest.approx(flagged[~anomalous].mean(), abs=1e-4)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_has_a_dynamic_batch(artifact: Path, batch: int) -> None:
    session = ort_session(artifact / ONNX_FILE)
    score, heat = session.run(["score", "heatmap"], {"image": _real(batch, QUICK.input_size)})
    side = QUICK.input_size // (2 * QUICK.stem_stride)
    assert score.shape == (batch,) and heat.shape == (batch, side, side)
    assert np.isfinite(score).all() and (heat >= 0).all()


def test_export_parity_on_random_and_real_inputs_with_batch_1_and_5(tmp_path: Path) -> None:
    torch.manual_seed(0)
    widths = QUICK.widths
    model = OtolithMKD(
        FeatureNet(3, widths),
        Student(1, widths),
        student_input="gray",
        rgb_mean=(0.3, 0.3, 0.25),
        rgb_std=(0.25, 0.25, 0.22),
    ).eval()
    model.top_k = 16
    size = 64
    path = export_onnx(
        model, tmp_path / "m.onnx", torch.zeros(2, 3, size, size), output_names=["score", "heatmap"]
    )
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        noise = rng.uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
        assert check_parity(model, path, noise, atol=1e-4, rtol=1e-4) < 1e-3
        assert check_parity(model, path, _real(batch, size), atol=1e-4, rtol=1e-4) < 1e-3
    model.top_k = 1  # a different graph must fail the check
    with pytest.raises(BackendError, match="disagree"):
        check_parity(model, path, _real(3, size))


def test_teacher_weights_round_trip_and_bad_files_fail_clearly(
    artifact: Path, tmp_path: Path
) -> None:
    teacher = load_teacher(
        artifact / "teacher.pt", QUICK.widths, QUICK.stem_stride, QUICK.teacher_depth
    )
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert teacher.depth == QUICK.teacher_depth
    with pytest.raises(ConfigError, match="2 convolutions per stage"):  # not this teacher
        load_teacher(artifact / "teacher.pt", QUICK.widths, QUICK.stem_stride, 2)
    bad = tmp_path / "bad.pt"
    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match="teacher-weights"):
        load_teacher(bad, QUICK.widths, QUICK.stem_stride)


def test_evaluate_regenerates_the_test_set_and_writes_results(
    artifact: Path, tmp_path: Path
) -> None:
    card = load_card(artifact)
    metrics = evaluate_otolith(artifact, tmp_path)
    assert metrics["n"] == QUICK.n_test_normal + len(ANOMALY_TYPES) * QUICK.n_test_per_anomaly
    assert metrics["auroc"] == card.metrics["auroc"], "same test set, same artifact, same score"
    assert metrics["threshold"] == pytest.approx(card.thresholds["anomaly_score"], abs=1e-5)
    assert json.loads((tmp_path / "evaluation.json").read_text())["auroc"] == metrics["auroc"]
    assert (tmp_path / "roc.png").stat().st_size > 1000
    assert (tmp_path / "heatmaps.png").stat().st_size > 1000


def test_evaluate_command_prints_the_headline(artifact: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        evaluate_command, ["--model", str(artifact), "--out", str(tmp_path), "--n", "8"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "auroc=" in result.output and (tmp_path / "evaluation.json").is_file()


def test_train_command_refuses_a_missing_gpu_and_bad_rates(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(train_command, ["--out", str(tmp_path), "--far", "1.5"])
    assert result.exit_code == 2 and "--far" in result.output
    if not torch.cuda.is_available():
        result = runner.invoke(train_command, ["--out", str(tmp_path), "--device", "cuda"])
        assert isinstance(result.exception, ConfigError)
