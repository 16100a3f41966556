"""Match thresholds per gallery size (issue 28, eighth round): the rate over galleries of N,
the table, the card field, and the decider and head using the threshold of the gallery's
size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seawatch.contracts.card import ModelCard
from seawatch.contracts.records import UNKNOWN
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.head import FishIdentifier
from seawatch.models.fish.metrics import threshold_for_false_match_rate
from seawatch.models.fish.open_set import OpenSetDecider
from seawatch.models.fish.size_thresholds import (
    SizeThresholds,
    false_match_rate,
    threshold_for_size,
    thresholds_by_size,
)
from seawatch.models.fish.tracklets import Place
from tests.models.fish_cards import fake_fish_card


def _scores(q: int = 200, g: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fishy = rng.normal(0, 0.05, (q, 1))  # some strangers resemble every fish a little more
    return np.clip(0.4 + fishy + rng.normal(0, 0.1, (q, g)), -1, 1)


def test_the_rate_is_the_exact_mean_over_every_gallery_of_n() -> None:
    scores = _scores(40, 7)
    t = float(np.quantile(scores, 0.8))
    for n in (1, 3, 7):
        galleries = list(itertools.combinations(range(7), n))
        brute = np.mean([(scores[:, list(c)].max(1) >= t).mean() for c in galleries])
        assert false_match_rate(scores, t, n) == pytest.approx(brute, abs=1e-12)
    # beyond G: N / G independent galleries of G
    at_g = false_match_rate(scores, t, 7)
    assert false_match_rate(scores, t, 14) == pytest.approx(1 - (1 - at_g) ** 2)


def test_at_the_calibration_gallery_the_table_is_the_single_threshold() -> None:
    scores = _scores()
    single = threshold_for_false_match_rate(scores.max(1), 0.01)
    assert threshold_for_size(scores, 0.01, scores.shape[1]) == single
    table = thresholds_by_size(scores, 0.01, sizes=(1, 5, 10, 60, 100, 1000))
    assert [n for n, _ in table] == [1, 5, 10, 30, 60]  # G added, beyond 3 G left out
    assert dict(table)[30] == single
    values = [t for _, t in table]
    assert values == sorted(values) and values[0] < single - 0.05  # one fish: far lower
    for n, t in table:  # each is the lowest that keeps the rate
        assert false_match_rate(scores, t, n) <= 0.01 + 1e-9 < false_match_rate(scores, t - 1e-4, n)


def test_the_table_reads_in_log_size_clamped_at_its_ends() -> None:
    table = SizeThresholds([(1, 0.4), (10, 0.6), (100, 0.7)])
    assert table.at(0) == table.at(1) == 0.4
    assert table.at(1000) == 0.7
    assert table.at(10) == 0.6
    assert table.at(round(10**0.5)) == pytest.approx(0.4 + 0.2 * np.log(3) / np.log(10), 1e-3)
    with pytest.raises(ValueError, match="increasing sizes"):
        SizeThresholds([(10, 0.6), (5, 0.5)])
    with pytest.raises(ValueError, match="increasing sizes"):
        SizeThresholds([])


def _card(table: list | None = None) -> ModelCard:
    thresholds = {"match_similarity": 0.8, "target_false_match_rate": 0.01}
    return fake_fish_card(dim=4, thresholds=thresholds, by_gallery_size=table)


TABLE = [(1, 0.5), (2, 0.6), (4, 0.8)]


def test_the_card_keeps_the_table_and_an_old_card_has_none() -> None:
    card = _card(TABLE)
    again = ModelCard.model_validate_json(card.model_dump_json())
    assert SizeThresholds.from_card(again).table == TABLE
    assert SizeThresholds.from_card(_card()) is None


def _gallery(n: int) -> Gallery:
    gallery = Gallery(4)
    for k in range(n):
        gallery.enrol(f"fish-{k}", np.eye(4, dtype=np.float32)[k])
    return gallery


def _near(k: int, cosine: float) -> np.ndarray:
    """A unit view at ``cosine`` to fish ``k`` (axis k), the rest on the last axis."""
    v = np.zeros(4, np.float32)
    v[k], v[3] = cosine, np.sqrt(1 - cosine**2)
    return v


def test_a_gallery_of_some_individuals_only() -> None:
    kept = _gallery(3).only({"fish-0", "fish-2"})
    assert kept.ids == ["fish-0", "fish-2"]
    np.testing.assert_array_equal(kept.views("fish-2")[0], np.eye(4, dtype=np.float32)[2:3])


def test_the_head_matches_at_the_threshold_of_its_gallery_size() -> None:
    view = _near(0, 0.65)  # over 0.6 (two fish), under the card's single 0.8
    sized = FishIdentifier(None, _card(TABLE), _gallery(2), max_batch=4, by_gallery_size=True)
    assert sized.match_threshold() == 0.6
    assert sized.decide(view[None], enrol_new=False)[0].individual == "fish-0"
    single = FishIdentifier(None, _card(TABLE), _gallery(2), max_batch=4)
    assert single.match_threshold() == 0.8
    assert single.decide(view[None], enrol_new=False)[0].individual == UNKNOWN
    old = FishIdentifier(None, _card(), _gallery(2), max_batch=4, by_gallery_size=True)
    assert old.match_threshold() == 0.8  # a card without the table: the single threshold
    # the threshold rises with the gallery: three fish, 0.6 + 0.2 log(3/2) / log(2)
    bigger = FishIdentifier(None, _card(TABLE), _gallery(3), max_batch=4, by_gallery_size=True)
    assert bigger.match_threshold() == pytest.approx(0.717, abs=1e-4)
    assert bigger.decide(view[None], enrol_new=False)[0].individual == UNKNOWN


def test_the_decider_moves_with_the_gallery_as_it_grows() -> None:
    gallery = _gallery(1)
    decider = OpenSetDecider(gallery, 0.8, size_thresholds=SizeThresholds(TABLE))
    assert decider.threshold == 0.5 and decider.base_threshold == 0.8
    view = _near(0, 0.55)
    source = SightingSource("a", 0)
    answer = decider.decide(view[None], [source], [Place("cam", 0, None, 500.0)])[0]
    assert answer.individual == "fish-0"  # one view alone over 0.5
    gallery.enrol("fish-1", np.eye(4, dtype=np.float32)[1])
    assert decider.threshold == 0.6  # two fish now
    later = SightingSource("b", 10**12)  # another visit: a new tracklet
    answer = decider.decide(view[None], [later], [Place("cam", 10**12, None, 500.0)])[0]
    assert answer.individual == UNKNOWN
    assert OpenSetDecider(gallery, 0.8).threshold == 0.8  # without a table: the single one
