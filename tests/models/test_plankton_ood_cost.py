"""The cheap OOD score (issue 26) decides what the plain one decided: on development draws
of every kind the scorer meets, the committed scorer's logits equal those of the plain
computation (issue 24's image statistics, the statistics distance with every term) to 1e-4,
and no flag changes. Skips without the committed scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.ood import OOD_FILE, load_ood
from seawatch.contracts.ood_knn import normalise
from seawatch.contracts.ood_scorer import METHOD, OodScorer
from seawatch.models.plankton.novel import CALIBRATION_TAXA, novel_set
from seawatch.models.plankton.ood_fit import graph_arrays
from seawatch.models.plankton.outliers import corrupted_set, outlier_set
from seawatch.models.plankton.synthetic_sets import synthetic_split
from tests.contracts.image_stats_plain import plain_image_stats

MODEL = Path(__file__).resolve().parents[2] / "models" / "plankton"


def _plain_scores(scorer: OodScorer, features, probs, crops, stage3) -> np.ndarray:
    """Issue 24's scorer, term by term: plain statistics, |x|^2 + |b|^2 - 2 x.b, a min;
    and the stage-3 columns where the scorer has them (1 - the largest cosine, log)."""
    z = (plain_image_stats(crops) - scorer.stats_mean) / scorer.stats_std
    bank = scorer.stats_bank
    d = (z**2).sum(1)[:, None] + (bank**2).sum(1)[None] - 2.0 * z @ bank.T
    near = np.sqrt(np.maximum(d.min(1), 0.0))
    cos = normalise(features) @ scorer.knn.bank.T
    entropy = -(probs * np.log(probs + 1e-9)).sum(1)
    rows = np.column_stack(
        [normalise(features), 1.0 - cos.max(1), probs.max(1), entropy, z, np.log(near + 0.1)]
    )
    if scorer.stage3 is not None:
        s3_cos = normalise(stage3) @ normalise(scorer.stage3.bank).T
        rows = np.column_stack([rows, np.log(1.0 - s3_cos.max(1) + 1e-3), stage3])
    hidden = np.maximum(((rows - scorer.in_mean) / scorer.in_scale) @ scorer.w1 + scorer.b1, 0)
    return hidden @ scorer.w2 + scorer.b2


def test_the_cheap_score_equals_the_plain_one() -> None:
    card = load_card(MODEL)
    if not (MODEL / OOD_FILE).is_file() or (card.ood or {}).get("method") != METHOD:
        pytest.skip(f"{MODEL} carries no outlier-exposure scorer")
    scorer = load_ood(MODEL, card.ood)
    inside, _ = synthetic_split("test", 12, seed=7_150_201, size=card.input.size)
    crops = np.concatenate(
        [
            inside.images,
            novel_set(12, 7_150_202, taxa=CALIBRATION_TAXA, size=card.input.size)[0],
            outlier_set(60, 7_150_203, size=card.input.size),
            corrupted_set(60, 7_150_204, size=card.input.size),
        ]
    )
    names = ("probs", "features", "stage3") if scorer.stage3 else ("probs", "features")
    out = graph_arrays(MODEL / ONNX_FILE, crops, names)
    probs, features, stage3 = out["probs"], out["features"], out.get("stage3")
    cheap = scorer.scores(features, probs, crops[:, None].astype(np.float32), stage3)
    plain = _plain_scores(scorer, features, probs, crops, stage3)
    np.testing.assert_allclose(cheap, plain, rtol=0, atol=1e-4)
    assert ((cheap > scorer.threshold) == (plain > scorer.threshold)).all()
