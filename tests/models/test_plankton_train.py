"""Training the plankton classifier end to end (tiny): card, dynamic-batch ONNX, parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

import torch

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import BackendError
from seawatch.contracts.preprocess import batch_tensor, prepare_roi
from seawatch.models.plankton.export import check_parity, export_onnx, exported, ort_session
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.synthetic import TAXA, render_roi
from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plankton")
    data = PlanktonData(n_per_class=10, val_per_class=4, imbalance=3.0)
    params = FitParams(epochs=1, batch_size=16)
    train_plankton(out, data=data, params=params, device="cpu", command="test")
    return out


def _crops(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return batch_tensor([prepare_roi(render_roi(TAXA[i % len(TAXA)], rng), 64) for i in range(n)])


def test_card_validates_and_describes_the_model(artifact: Path) -> None:
    card = load_card(artifact)  # also checks the ONNX sha256
    assert card.task == "plankton"
    assert card.class_names == list(TAXA)
    assert card.input.size == 64 and card.input.channels == 1
    assert card.input.std > 0.0 and 0.0 < card.input.mean < 1.0
    # a top-1 probability is never below 1 / classes: a threshold there would accept all
    threshold = card.thresholds["unknown_confidence"]
    assert 1.0 / len(TAXA) < threshold < 1.0 and card.metrics["threshold"] == threshold
    assert card.thresholds["temperature"] > 0
    assert card.training.command == "test"
    m = card.metrics
    assert {"accuracy", "macro_f1", "per_class", "unknown", "ece", "calibration"} <= set(m)
    assert m["split"].startswith("test")
    assert set(m["per_class"]) == set(TAXA)
    assert m["onnx_parity_max_abs_diff"] < 1e-4
    assert m["calibration"]["val_nll_after"] <= m["calibration"]["val_nll_before"] + 1e-6
    data = card.training.data
    assert data["train"]["by_class"]["detritus"] > data["train"]["by_class"]["radiolarian"]
    assert min(data["test"]["by_class"].values()) > 0  # every class is evaluated
    assert json.loads((artifact / "card.json").read_text())["output"] == "probs"
    for plot in ("confusion.png", "reliability.png"):
        assert (artifact / plot).stat().st_size > 1000


def test_unknown_threshold_is_recomputed_from_the_graph_on_its_validation_split(
    artifact: Path,
) -> None:
    """The card's ``unknown`` threshold, recomputed here: the validation split regenerated
    from the card, scored by the exported graph, its 2 % quantile of right answers' top-1
    confidence (a tiny run is near chance, so only a recomputation bounds it)."""
    from seawatch.models.plankton.evaluate import REJECT_CORRECT
    from seawatch.models.plankton.synthetic_sets import synthetic_split

    card = load_card(artifact)
    data = card.training.data
    validation, _ = synthetic_split(
        "validation",
        data["eval_per_class"],
        seed=card.training.seed,
        size=card.input.size,
        segmented_share=data["segmented_share"],
    )
    (probs,) = ort_session(artifact / ONNX_FILE).run(
        ["probs"], {"image": validation.images[:, None].astype(np.float32)}
    )
    correct = probs.argmax(1) == validation.labels
    assert card.metrics["validation"]["n"] == len(validation.labels)
    assert card.metrics["validation"]["accuracy"] == pytest.approx(correct.mean(), abs=1e-4)
    expected = np.quantile(probs.max(1)[correct], REJECT_CORRECT)
    assert card.thresholds["unknown_confidence"] == pytest.approx(expected, abs=2e-3)
    accepted = probs.max(1) >= card.thresholds["unknown_confidence"]
    assert card.metrics["unknown"]["coverage"] == pytest.approx(accepted.mean(), abs=0.02)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_has_a_dynamic_batch_and_returns_probabilities(artifact: Path, batch: int) -> None:
    session = ort_session(artifact / ONNX_FILE)
    (probs,) = session.run(["probs"], {"image": _crops(batch)})
    assert probs.shape == (batch, len(TAXA))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_export_parity_torch_vs_onnxruntime(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PlanktonNet(len(TAXA), mean=0.8, std=0.2).eval()
    path = export_onnx(model, tmp_path / "m.onnx", size=64)
    diff = check_parity(exported(model), path, _crops(7, seed=3))  # probs, features, stage3
    assert diff < 1e-4
    outputs = ort_session(path).run(None, {"image": _crops(2)})
    assert [o.shape for o in outputs] == [(2, len(TAXA)), (2, 160), (2, 192)]


def test_parity_check_fails_loudly_on_a_different_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first = PlanktonNet(len(TAXA)).eval()
    path = export_onnx(first, tmp_path / "m.onnx", size=64)
    other = PlanktonNet(len(TAXA), mean=0.1, std=0.9).eval()
    with pytest.raises(BackendError, match="disagree"):
        check_parity(exported(other), path, _crops(4))


def test_network_outputs_logits_for_training_and_probs_in_forward() -> None:
    model = PlanktonNet(len(TAXA)).eval()
    x = torch.from_numpy(_crops(3))
    logits = model.logits(x)
    probs = model(x)
    assert logits.shape == probs.shape == (3, len(TAXA))
    torch.testing.assert_close(probs, torch.softmax(logits, 1))
    model.set_temperature(2.0)
    torch.testing.assert_close(model(x), torch.softmax(logits / 2.0, 1))
    with pytest.raises(ValueError, match="at least 2 classes"):
        PlanktonNet(1)


def test_evaluate_command_scores_the_artifact_through_onnxruntime(artifact: Path, tmp_path: Path):
    from click.testing import CliRunner

    from seawatch.cli import cli

    result = CliRunner().invoke(
        cli, ["evaluate", "plankton", "--model", str(artifact), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "evaluation.json").read_text())
    card = load_card(artifact)
    # the same synthetic test split and graph as training's test: the same numbers
    assert report["accuracy"] == card.metrics["accuracy"]
    assert report["macro_f1"] == card.metrics["macro_f1"]
    assert {"ece", "ece_uncalibrated", "by_source"} <= set(report)
    for plot in ("confusion.png", "reliability.png"):
        assert (tmp_path / plot).stat().st_size > 1000
