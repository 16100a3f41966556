"""Re-ID metrics on hand-made cases: CMC/top-k, mAP, AUROC, false-match threshold."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.fish import metrics as m


def test_ranks_top_k_and_cmc() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # truth 0: rank 1
            [0.5, 0.4, 0.6],  # truth 1: rank 3
            [0.3, 0.7, 0.7],  # truth 2: tie with column 1 counts against it: rank 2
        ]
    )
    truth = np.array([0, 1, 2])
    np.testing.assert_array_equal(m.true_ranks(scores, truth), [1, 3, 2])
    assert m.top_k(scores, truth, 1) == pytest.approx(1 / 3)
    assert m.top_k(scores, truth, 2) == pytest.approx(2 / 3)
    np.testing.assert_allclose(m.cmc(scores, truth, max_rank=3), [1 / 3, 2 / 3, 1.0])
    with pytest.raises(ValueError, match="one truth per query"):
        m.true_ranks(scores, truth[:2])


def test_average_precision_and_map() -> None:
    # relevant at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    assert m.average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    assert m.average_precision([0.9, 0.8], [0, 0]) == 0.0
    sims = np.array([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]])
    gallery_labels = np.array([7, 8, 7])
    # query 0 (label 7): relevant at ranks 1 and 3 -> 5/6; query 1 (label 8): rank 2 -> 1/2
    expected = (5 / 6 + 1 / 2) / 2
    assert m.mean_average_precision(sims, np.array([7, 8]), gallery_labels) == pytest.approx(
        expected
    )


def test_auroc_counts_ties_as_half_and_needs_both_classes() -> None:
    assert m.auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert m.auroc([0.1], [0.9]) == 0.0
    assert m.auroc([0.5, 0.5], [0.5]) == 0.5
    # pairs: (0.6>0.5) (0.6<0.7) (0.4<0.5) (0.4<0.7) -> 1/4
    assert m.auroc([0.6, 0.4], [0.5, 0.7]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="both classes"):
        m.auroc([], [0.1])


def test_threshold_keeps_false_matches_at_or_below_the_target() -> None:
    rng = np.random.default_rng(0)
    impostor = rng.normal(0.3, 0.1, 1000)
    for rate in (0.0, 0.01, 0.05, 0.2):
        t = m.threshold_for_false_match_rate(impostor, rate)
        assert (impostor >= t).mean() <= rate
        assert (impostor >= t - 2e-4).mean() >= rate - 0.002  # and it is not needlessly high
    with pytest.raises(ValueError, match="false-match rate"):
        m.threshold_for_false_match_rate(impostor, 1.5)
