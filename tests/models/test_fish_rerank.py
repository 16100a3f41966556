"""Query expansion (issue 28, eighth round): the expanded query, the gallery's re-ranked
scores, and the head's option with the card's own threshold for them."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.head import FishIdentifier
from seawatch.models.fish.options import FishOptions, threshold_key
from seawatch.models.fish.rerank import KEY, QueryExpansion
from tests.models.fish_cards import fake_fish_card


def _unit(*values: float) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


def test_a_query_is_pulled_towards_its_nearest_views_by_their_weight() -> None:
    views = np.stack([_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1)])
    q = _unit(0.8, 0.6, 0)
    plain = QueryExpansion(k=1, alpha=0).expand(q[None], views)[0]  # + nearest view, weight 1
    np.testing.assert_allclose(plain, _unit(1.8, 0.6, 0), atol=1e-6)
    two = QueryExpansion(k=2, alpha=3).expand(q[None], views)[0]
    np.testing.assert_allclose(two, _unit(0.8 + 0.8**3, 0.6 + 0.6**3, 0), atol=1e-6)
    far = QueryExpansion(k=1, alpha=1).expand(_unit(-0.6, 0.8, 0)[None], views[:1])[0]
    np.testing.assert_allclose(far, _unit(-0.6, 0.8, 0), atol=1e-6)  # a negative cosine: none
    with pytest.raises(ValueError, match="k >= 1"):
        QueryExpansion(k=0)


def test_the_gallery_scores_expanded_queries_when_asked() -> None:
    gallery = Gallery(3)
    gallery.enrol("a", _unit(1, 0, 0))
    gallery.enrol("b", _unit(0, 1, 0))
    q = _unit(0.8, 0.6, 0)
    np.testing.assert_allclose(gallery.scores(q[None])[0], [0.8, 0.6], atol=1e-6)
    gallery.expansion = QueryExpansion(k=1, alpha=0)
    expanded = _unit(1.8, 0.6, 0)
    np.testing.assert_allclose(gallery.scores(q[None])[0], expanded[:2], atol=1e-6)


def _card(thresholds: dict) -> ModelCard:
    return fake_fish_card(dim=3, thresholds=thresholds)


def test_the_head_matches_expanded_scores_at_their_own_threshold() -> None:
    gallery = Gallery(3)
    gallery.enrol("a", np.stack([_unit(1, 0, 0), _unit(1, 0.2, 0)]))
    card = _card({"match_similarity": 0.7, KEY: 0.9})
    head = FishIdentifier(None, card, gallery, max_batch=4, query_expansion=True)
    assert head.threshold == 0.9 and gallery.expansion is not None
    view = _unit(0.8, 0.6, 0)  # 0.8 plain (a match at 0.7); expanded about 0.93
    assert head.decide(view[None], enrol_new=False)[0].individual == "a"
    weak = _unit(0.71, 0, 0.7042)  # 0.71 plain (a match at 0.7); expanded 0.892 (none at 0.9)
    assert head.decide(weak[None], enrol_new=False)[0].individual == "unknown"
    plain_gallery = Gallery(3)
    plain_gallery.enrol("a", gallery.views("a")[0])
    plain = FishIdentifier(None, card, plain_gallery, max_batch=4)
    assert plain.threshold == 0.7 and plain.gallery.expansion is None
    assert plain.decide(weak[None], enrol_new=False)[0].individual == "a"
    with pytest.raises(ConfigError, match="--recalibrate"):
        FishIdentifier(
            None, _card({"match_similarity": 0.7}), Gallery(3), max_batch=4, query_expansion=True
        )


def test_the_shared_gallery_merges_twins_at_the_threshold_of_the_scores() -> None:
    card = _card({"match_similarity": 0.7, KEY: 0.9})
    assert threshold_key(FishOptions(), card) == "match_similarity"
    assert threshold_key(FishOptions(query_expansion=True), card) == KEY
    with pytest.raises(ConfigError, match="--recalibrate"):
        threshold_key(FishOptions(query_expansion=True), _card({"match_similarity": 0.7}))
