"""The gallery scores the open-set decider needs, computed as few times as the gallery allows.

numpy only. Deciding a poll's sightings one at a time scored each against the gallery alone,
and an undecided tracklet scored every one of its good views again at each new sighting.
:class:`ScoreCache` instead scores a whole poll in one matrix product and keeps each
tracklet's view scores; both are computed again (for the sightings still to come) only when
the gallery's views change (:attr:`~seawatch.models.fish.gallery.Gallery.version`: an
enrolment, a new fish). The scores are the same cosines; a matrix product may round the last
bit of a float32 differently from a product with one row (about 1e-7).

:class:`FreshScores` computes every score afresh, one sighting at a time: the reference the
tests hold the cache to.
"""

from __future__ import annotations

import numpy as np

from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.tracklets import Tracklet


class ScoreCache:
    """Scores of one poll's embeddings and of the tracklets' views against ``gallery``."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self._embeddings = np.zeros((0, 0), np.float32)
        self._rows = np.zeros((0, 0), np.float32)
        self._first = 0  # the poll's sighting that ``_rows`` starts at
        self._version = -1  # the gallery's version ``_rows`` were computed at

    def batch(self, embeddings: np.ndarray) -> None:
        """A new poll's unit embeddings (N x D), scored at the first :meth:`row`."""
        self._embeddings = embeddings
        self._version = -1

    def row(self, i: int) -> np.ndarray:
        """The poll's ``i``-th embedding's score for each individual (the gallery as it is
        now); the sightings from ``i`` on are scored again after the gallery changed."""
        if self._version != self.gallery.version or i < self._first:
            self._rows = self.gallery.scores(self._embeddings[i:])
            self._first, self._version = i, self.gallery.version
        return self._rows[i - self._first]

    def views(self, track: Tracklet, newest: np.ndarray | None = None) -> np.ndarray:
        """The scores of the tracklet's good views (one row each), those of earlier
        sightings kept while the gallery is unchanged; ``newest``: the last view's row,
        when it was just added and scored (:meth:`row`)."""
        if track.scored_at != self.gallery.version:
            track.view_scores.clear()
            track.scored_at = self.gallery.version
        missing = track.views[len(track.view_scores) :]
        if len(missing) == 1 and newest is not None:
            track.view_scores.append(newest)
        elif missing:
            track.view_scores.extend(self.gallery.scores(np.stack(missing)))
        return np.stack(track.view_scores)


class FreshScores(ScoreCache):
    """Every score computed afresh, one sighting at a time (the reference for the tests)."""

    def row(self, i: int) -> np.ndarray:
        """The ``i``-th embedding's scores, alone."""
        return self.gallery.scores(self._embeddings[i][None])[0]

    def views(self, track: Tracklet, newest: np.ndarray | None = None) -> np.ndarray:
        """All of the tracklet's good views scored again."""
        return self.gallery.scores(np.stack(track.views))


__all__ = ["FreshScores", "ScoreCache"]
