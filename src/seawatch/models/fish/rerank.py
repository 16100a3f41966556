"""Re-ranking of gallery scores by query expansion (alpha-QE), a score transform before the
match threshold (issue 28, eighth round; off by default: it did not help, see the fish
README).

numpy only. alpha-QE (Radenović et al. 2018): a query is replaced by the normalised sum of
itself and its ``k`` most similar gallery views, each weighted by its cosine to the query to
the power ``alpha``; the expanded query is scored against the gallery as before (per
individual, the maximum over its views). It pulls a query towards the views it already
resembles most: a known fish seen in an odd pose borrows its enrolled views, but a stranger
is pulled towards its nearest look-alike too, so the threshold for the expanded scores must
be calibrated again on the calibration fish (never on a stream): the card's
``match_similarity_query_expansion``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seawatch.contracts.errors import ConfigError

KEY = "match_similarity_query_expansion"  # the card's threshold for the expanded scores


@dataclass(frozen=True, slots=True)
class QueryExpansion:
    """alpha-QE over the ``k`` nearest gallery views (see the module docstring)."""

    k: int = 2
    alpha: float = 3.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.alpha < 0:
            msg = f"query expansion needs k >= 1 and alpha >= 0, got {self.k}, {self.alpha}"
            raise ValueError(msg)

    def expand(self, queries: np.ndarray, views: np.ndarray) -> np.ndarray:
        """Unit queries (Q x D) expanded over their nearest unit ``views`` (V x D)."""
        if not len(views) or not len(queries):
            return queries
        sims = queries @ views.T
        k = min(self.k, len(views))
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(sims, nearest, axis=1), 0.0, None) ** self.alpha
        expanded = queries + np.einsum("qk,qkd->qd", weights, views[nearest])
        return expanded / np.maximum(np.linalg.norm(expanded, axis=1, keepdims=True), 1e-12)


def expansion_threshold_key(card) -> str:
    """The card's threshold name for query-expanded scores; a clear error without it."""
    if KEY not in card.thresholds:
        msg = (
            f"card of {card.name} has no thresholds.{KEY} for query expansion; write it with "
            "`seawatch evaluate fish --recalibrate`, or set query_expansion: false"
        )
        raise ConfigError(msg)
    return KEY


__all__ = ["KEY", "QueryExpansion", "expansion_threshold_key"]
