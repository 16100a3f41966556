"""Training the fish re-ID model end to end (quick), export parity and evaluation."""

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
from seawatch.models.fish.evaluate import evaluate_fish
from seawatch.models.fish.export import check_parity, export_fish, ort_session
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.head import prepare_fish
from seawatch.models.fish.network import FishNet, InpaintDecoder
from seawatch.models.fish.synthetic import make_individuals, render_fish
from seawatch.models.fish.train import train_fish

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fish")
    train_fish(out, quick=True, command="test")
    return out


def _real(n: int, seed: int = 0) -> np.ndarray:
    fish, rng = make_individuals(n, seed), np.random.default_rng(seed)
    return np.stack(
        [prepare_fish(render_fish(f, rng, height=70, width=150), 64, 160) for f in fish]
    )


def test_quick_training_writes_a_valid_artifact(artifact: Path) -> None:
    card = load_card(artifact)  # validates and checks the ONNX sha256
    assert card.task == "fish" and card.training.command == "test"
    assert (card.input.height, card.input.width, card.input.channels) == (64, 160, 3)
    assert len(card.input.mean) == len(card.input.std) == 3
    assert card.output == "embedding" and card.outputs == ["embedding"]
    assert card.input.preprocessing == "seawatch.models.fish.head.prepare_fish"
    assert card.thresholds["target_false_match_rate"] == 0.01
    # the threshold is the one calibrated on impostor sightings, and it keeps their false
    # matches within the target
    threshold = card.metrics["threshold"]
    assert card.thresholds["match_similarity"] == threshold["match_similarity"]
    assert threshold["match_similarity"] == threshold["recalibrated_match_similarity"]
    assert threshold["calibration_false_match_rate"] <= 0.01
    assert {"known", "open_set", "threshold", "history"} <= set(card.metrics)
    assert set(card.metrics["known"]) == {"seen", "unseen", "all"}
    assert card.metrics["onnx_parity_max_abs_diff"] < 1e-4
    gallery = Gallery.load(artifact / card.files["gallery"], dim=card.metrics["embedding_dim"])
    assert len(gallery) == card.metrics["known"]["all"]["individuals"]
    assert "zf-0-0000" in gallery  # the first seen individual
    for name in ("similarity.png", "cmc.png", "examples.png"):
        assert (artifact / name).stat().st_size > 5000


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_embeddings_are_unit_vectors_at_any_batch(artifact: Path, batch: int) -> None:
    session = ort_session(artifact / ONNX_FILE)
    (emb,) = session.run(["embedding"], {"image": _real(batch)})
    assert emb.shape == (batch, 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 5])
def test_export_parity_on_random_and_real_inputs(tmp_path: Path, batch: int) -> None:
    torch.manual_seed(0)
    model = FishNet(mean=(0.4, 0.5, 0.45), std=(0.2, 0.25, 0.22)).eval()
    path = export_fish(model, tmp_path / "m.onnx")
    noise = np.random.default_rng(batch).uniform(0, 255, (batch, 3, 64, 160)).astype(np.float32)
    assert check_parity(model, path, noise) < 1e-4
    assert check_parity(model, path, _real(batch, seed=batch)) < 1e-4
    other = FishNet(mean=(0.1, 0.1, 0.1), std=(0.9, 0.9, 0.9)).eval()
    with pytest.raises(BackendError, match="disagree"):
        check_parity(other, path, noise)


def test_network_embeds_unit_vectors_and_the_decoder_reconstructs_full_size() -> None:
    model = FishNet().eval()
    x = torch.from_numpy(_real(3))
    emb = model(x)
    assert emb.shape == (3, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    features = model.features(model.normalise(x))
    assert InpaintDecoder(model.feature_channels)(features).shape == x.shape
    with pytest.raises(ValueError, match="multiple of 8"):
        FishNet(height=60)


def test_evaluation_from_onnx_reproduces_the_card(artifact: Path, tmp_path: Path) -> None:
    card = load_card(artifact)
    result = evaluate_fish(artifact, tmp_path)
    assert result["known"] == card.metrics["known"]
    assert result["open_set"] == card.metrics["open_set"]
    assert result["threshold"]["match_similarity"] == card.thresholds["match_similarity"]
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["known"]["all"]["top1"] == result["known"]["all"]["top1"]
    assert (tmp_path / "similarity.png").is_file() and (tmp_path / "cmc.png").is_file()
