"""The outlier-exposure scorer: its artifact, its inputs, the head's use of the images.

The committed ``models/plankton`` carries the scorer in ``ood.npz``; tests skip without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.ood import OOD_FILE, load_ood
from seawatch.contracts.ood_scorer import METHOD, OodScorer
from seawatch.contracts.records import UNKNOWN
from seawatch.models.plankton.head import PlanktonClassifier, sample_inputs
from seawatch.models.plankton.outliers import corrupted_set, outlier_set

MODEL = Path(__file__).resolve().parents[2] / "models" / "plankton"


def _scorer() -> tuple[OodScorer, object]:
    card = load_card(MODEL)
    if not (MODEL / OOD_FILE).is_file() or (card.ood or {}).get("method") != METHOD:
        pytest.skip(f"{MODEL} carries no outlier-exposure scorer")
    scorer = load_ood(MODEL, card.ood)
    assert isinstance(scorer, OodScorer)
    return scorer, card


def _head(scorer: OodScorer, card) -> PlanktonClassifier:
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(MODEL / ONNX_FILE, threads=1)
    return PlanktonClassifier(backend, card, max_batch=64, top_k=3, ood=scorer)


def test_the_committed_scorer_matches_its_card() -> None:
    scorer, card = _scorer()
    spec = card.ood
    calibration = spec["calibration"]
    assert calibration["validation"]["unknown"] <= calibration["target_unknown_rate"]
    assert scorer.dim == card.ood["inputs"]["features"] == 160
    held_out = spec["calibration"]["held_out_taxa"]
    assert held_out["unknown"] > 2 * held_out["softmax_alone"]


def test_the_head_scores_the_images_it_classifies() -> None:
    """Known taxa through another camera's optics (noise, blur, compression) are reported
    unknown far more often than the same taxa through the training optics: the image
    statistics reach the scorer."""
    scorer, card = _scorer()
    head = _head(scorer, card)
    clean = sample_inputs(card, 96, seed=7_100_510)
    other = corrupted_set(96, 7_100_511)[:, None].astype(np.float32)
    unknown = {
        name: np.mean([p.taxon == UNKNOWN for p in head.predict(x)])
        for name, x in (("clean", clean), ("other optics", other))
    }
    assert unknown["clean"] <= 0.10
    assert unknown["other optics"] >= 0.3
    head.close()


def test_drawn_organisms_are_flagged_and_the_flag_names_the_rule() -> None:
    scorer, card = _scorer()
    head = _head(scorer, card)
    preds = head.predict(outlier_set(64, 7_100_512)[:, None].astype(np.float32))
    flagged = [p for p in preds if p.ood_flagged]
    assert len(flagged) >= 0.4 * len(preds)
    assert all(p.taxon == UNKNOWN and p.ood > scorer.threshold for p in flagged)
    head.close()


def test_uint8_crops_and_the_batch_tensor_score_the_same() -> None:
    scorer, card = _scorer()
    x = sample_inputs(card, 8, seed=7_100_513)
    rng = np.random.default_rng(7_100_514)
    features = rng.normal(size=(8, scorer.dim)).astype(np.float32)
    probs = rng.dirichlet(np.ones(len(card.class_names)), 8).astype(np.float32)
    stage3 = rng.uniform(0, 1, (8, scorer.stage3_dim)).astype(np.float32) if scorer.stage3 else None
    a = scorer.scores(features, probs, x, stage3)
    b = scorer.scores(features, probs, x[:, 0].astype(np.uint8), stage3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="probabilities and the images"):
        scorer.scores(features)


def test_a_scorer_missing_arrays_or_disagreeing_with_its_card_fails_clearly(tmp_path) -> None:
    scorer, card = _scorer()
    arrays = scorer.arrays()
    with pytest.raises(ValueError, match="w1"):
        OodScorer({k: v for k, v in arrays.items() if k != "w1"})
    path = tmp_path / OOD_FILE
    scorer.with_threshold(scorer.threshold + 1.0).save(path)
    spec = dict(card.ood) | {"sha256": __import__("hashlib").sha256(path.read_bytes()).hexdigest()}
    with pytest.raises(ConfigError, match="disagrees with its card"):
        load_ood(tmp_path, spec)


def test_drawn_outliers_are_reproducible() -> None:
    a, b = outlier_set(6, 7_100_515), outlier_set(6, 7_100_515)
    assert a.shape == (6, 64, 64) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(corrupted_set(4, 7_100_516), corrupted_set(4, 7_100_516))


def test_the_stored_layer_is_the_mean_of_its_members_logits() -> None:
    """Five networks stored as one wide layer: the same numbers as averaging each one's
    logit (what the card says the score is)."""
    pytest.importorskip("sklearn.neural_network")
    from sklearn.neural_network import MLPClassifier

    from seawatch.models.plankton.ood_oe_fit import ALPHA, HIDDEN, MEMBERS, _fit_network

    rng = np.random.default_rng(7_100_517)
    x = np.concatenate([rng.normal(0, 1, (150, 6)), rng.normal(1.5, 1, (150, 6))])
    y = np.r_[np.zeros(150), np.ones(150)]
    net = _fit_network(x, y)
    assert net["w1"].shape == (6, MEMBERS * HIDDEN)
    z = (x - net["in_mean"]) / net["in_scale"]
    stored = np.maximum(z @ net["w1"] + net["b1"], 0) @ net["w2"] + net["b2"]
    logits = []
    for seed in range(MEMBERS):
        mlp = MLPClassifier(
            (HIDDEN,), alpha=ALPHA, max_iter=300, early_stopping=True, random_state=seed
        ).fit(z, y)
        p = np.clip(mlp.predict_proba(z)[:, 1], 1e-12, 1 - 1e-12)
        logits.append(np.log(p) - np.log1p(-p))
    np.testing.assert_allclose(stored, np.mean(logits, axis=0), rtol=1e-3, atol=1e-3)


def test_the_softmax_floor_is_the_one_that_catches_most_calibration_taxa() -> None:
    from seawatch.models.plankton.ood_oe_fit import choose_floor

    rng = np.random.default_rng(0)
    # in distribution: confident, low scores; the calibration taxa: unsure yet low-scored
    # half (only the softmax sees them) and high-scored half (only the score sees them)
    val = (rng.uniform(0.6, 1.0, 1000), rng.normal(0, 1, 1000))
    val[0][:30] = rng.uniform(0.45, 0.55, 30)  # 3 % unsure in distribution
    cal = (np.r_[np.full(50, 0.3), np.full(50, 0.9)], np.r_[np.zeros(50), np.full(50, 1.85)])
    floor, threshold, table = choose_floor(0.58, val, cal, 0.04)
    assert [row["softmax_floor"] for row in table] == [0.58, 0.5, 0.4, 0.3, 0.2, 0.0]
    for row in table:  # each bar's threshold spends the same budget on validation
        flagged = (val[0] < row["softmax_floor"]) | (val[1] > row["threshold"])
        assert flagged.mean() <= 0.04
    # 0.4 keeps the unsure calibration objects (0.3) and frees the 3 % for the score
    assert floor == 0.4 and table[2]["calibration_taxa"] == 1.0
    assert threshold == table[2]["threshold"]
