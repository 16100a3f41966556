"""The open-set decision over tracklets: known fish, a new fish, or not yet decided.

numpy only. Deciding each sighting alone (the head before issue 28) turned one poor view of a
known fish into a new fish: at the 1 % false-match threshold about one known sighting in
seven falls below it. Here a sighting joins its tracklet (:mod:`seawatch.models.fish.
tracklets`) and the tracklet is decided as a group:

- **known** (or an earlier new fish) when the mean, over the tracklet's good views, of their
  score for one individual reaches the match threshold less ``known_drop[n]`` for ``n``
  views (the mean of several views varies less than one view's score, so the same
  false-match rate is reached lower), and one of those views alone reaches the threshold
  less ``anchor_drop`` (a stranger that resembles a known fish stays under it view by view);
- **new** only when at least ``min_views`` good views (quality at least ``min_quality``)
  agree that no individual reaches the threshold less ``new_drop[n]``; between the two a
  tracklet waits for more views. The fish is enrolled with all of them, under the id
  its first good view's frame derives (replay stable), and only the deciding sighting says
  ``new_individual`` (one "new fish" alert per fish), on a replay too;
- **new** also when at least ``lone_views`` good views that look alike (mean pairwise
  cosine at least ``lone_agree``) each stay under the threshold for every individual: a
  stranger close to a known fish (the mean over the new bar, no view over the threshold);
- never **new** while one of its good views alone reaches the threshold (plus
  ``new_view_margin``) for some individual: a known fish's weak views pulled the mean down;
- until then a sighting is reported as its own best match when that reaches the threshold
  (matched, nothing enrolled), else ``unknown``. A poor view never enrols and never decides.
  On whole frames (``alone_margin``, ``alone_new_margin``) one view is weaker evidence: a
  view alone, or the view that anchors a known decision, must reach the threshold plus
  ``alone_margin``, and a view alone names a provisional fish only ``alone_new_margin``
  higher still.

With ``size_thresholds`` (the card's table, :mod:`seawatch.models.fish.size_thresholds`) the
threshold is the one for the gallery's present size, so every rule above moves with it.

Before any of this, a whole frame's detection that lies over two tracked fish (or over one
whose views it does not resemble: :mod:`seawatch.models.fish.occlusion`) is a *merge*: it
joins no tracklet and is reported as its best match only ``merge_match_margin`` over the
threshold, else ``unknown`` (its crop holds two fish).

A decided tracklet's later sightings get its individual, unless a sighting's own score for
it is under the threshold less ``inherit_drop`` (a poor view: less ``poor_inherit_drop``),
or another individual scores more than ``inherit_margin`` above it, or (``inherit_agree``,
whole frames) it is under the threshold and its view is unlike the tracklet's last views:
then the link was likely wrong (two fish crossing in front of one camera) and it is
reported ``unknown``. A
provisional individual gathers the good views of the tracklets decided as it, up to
``max_views``, but only views that alone reach the threshold for it: a view that barely fits
would let the id drift towards a look-alike, which then matches it better and better. After
each enrolment the provisional individuals are compared view set to view set; two that are
one fish (mean best score at the threshold) are merged, the later into the earlier
(recorded, reversible with :meth:`~seawatch.models.fish.gallery.Gallery.unmerge`).

The tuned constants named here in capitals, with the seeds they were chosen on, are in
:mod:`seawatch.models.fish.open_set_params`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seawatch.contracts.records import UNKNOWN
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.open_set_params import (
    ANCHOR_DROP,
    INHERIT_DROP,
    INHERIT_MARGIN,
    KNOWN_DROP,
    LONE_AGREE,
    LONE_VIEWS,
    MERGE_MATCH_MARGIN,
    NEW_DROP,
    NEW_VIEW_MARGIN,
    POOR_INHERIT_DROP,
    POOR_MATCH_MARGIN,
    WHOLE_FRAME_ALONE_MARGIN,
    WHOLE_FRAME_ALONE_NEW_MARGIN,
    WHOLE_FRAME_INHERIT_AGREE,
)
from seawatch.models.fish.score_cache import ScoreCache
from seawatch.models.fish.size_thresholds import SizeThresholds
from seawatch.models.fish.tracklets import Place, Tracklet, Tracklets


@dataclass(frozen=True, slots=True)
class Sighting:
    """The identifier's answer for one fish crop."""

    individual: str
    similarity: float  # best gallery score (cosine; -1.0 for an empty gallery)
    new_individual: bool  # True when this sighting enrolled a new id
    provisional: bool  # the matched/enrolled individual is provisional
    kept_view: bool = False  # this sighting's embedding was added to the gallery
    # the views this decision added to the gallery (tracklets: earlier sightings' too), the
    # enrolling one first when ``new_individual``; empty: this sighting's alone if kept_view
    kept: tuple[SightingSource, ...] = ()


@dataclass(frozen=True, slots=True)
class Merge:
    """Two provisional ids found to be one fish."""

    loser: str
    survivor: str
    similarity: float


def _at(drops: Sequence[float], n: int) -> float:
    return drops[min(n, len(drops)) - 1]


class OpenSetDecider:
    """Decides sightings over tracklets against ``gallery`` (see the module docstring)."""

    def __init__(
        self,
        gallery: Gallery,
        threshold: float,
        *,
        min_views: int = 3,
        min_quality: float = 80.0,
        max_views: int = 8,
        tracklets: Tracklets | None = None,
        known_drop: Sequence[float] = KNOWN_DROP,
        new_drop: Sequence[float] = NEW_DROP,
        inherit_drop: float = INHERIT_DROP,
        anchor_drop: float = ANCHOR_DROP,
        inherit_margin: float = INHERIT_MARGIN,
        poor_inherit_drop: float = POOR_INHERIT_DROP,
        lone_views: int = LONE_VIEWS,
        lone_agree: float = LONE_AGREE,
        poor_match_margin: float = POOR_MATCH_MARGIN,
        merge_match_margin: float = MERGE_MATCH_MARGIN,
        inherit_agree: float = 0.0,
        new_view_margin: float = NEW_VIEW_MARGIN,
        alone_margin: float = 0.0,
        alone_new_margin: float = 0.0,
        size_thresholds: SizeThresholds | None = None,
    ) -> None:
        if min_views < 1 or max_views < min_views:
            msg = f"need 1 <= min_views <= max_views, got {min_views}, {max_views}"
            raise ValueError(msg)
        self.gallery = gallery
        self.base_threshold = threshold
        # the threshold for the gallery's size (size_thresholds.py); None: ``threshold``
        self.size_thresholds = size_thresholds
        self._sized = (-1, threshold)  # (gallery size, its threshold), computed once a size
        self.min_views = min_views
        self.min_quality = min_quality
        self.max_views = max_views
        self.tracklets = tracklets or Tracklets()
        self.known_drop, self.new_drop = tuple(known_drop), tuple(new_drop)
        self.inherit_drop = inherit_drop
        self.anchor_drop, self.inherit_margin = anchor_drop, inherit_margin
        self.poor_inherit_drop = poor_inherit_drop
        self.lone_views, self.lone_agree = lone_views, lone_agree
        self.poor_match_margin = poor_match_margin
        self.merge_match_margin = merge_match_margin
        self.inherit_agree = inherit_agree
        self.new_view_margin = new_view_margin
        self.alone_margin, self.alone_new_margin = alone_margin, alone_new_margin
        self.merged = 0  # sightings found to lie over two fish (occlusion.py)
        self.merges: list[Merge] = []
        self.scores = ScoreCache(gallery)  # a poll's scores in one product (score_cache.py)

    @property
    def threshold(self) -> float:
        """The match threshold every rule is relative to: the card's single one, or with
        ``size_thresholds`` the one for the gallery's present number of individuals (it
        rises as new fish are enrolled)."""
        if self.size_thresholds is None:
            return self.base_threshold
        n = len(self.gallery)
        if self._sized[0] != n:
            self._sized = (n, self.size_thresholds.at(n))
        return self._sized[1]

    def decide(
        self,
        embeddings: np.ndarray,
        sources: Sequence[SightingSource],
        places: Sequence[Place],
    ) -> list[Sighting]:
        """One answer per unit embedding, in order (the gallery grows as they are decided)."""
        out = []
        self.scores.batch(embeddings)
        for i, (embedding, source, place) in enumerate(
            zip(embeddings, sources, places, strict=True)
        ):
            if (answer := self.gallery.seen(source.uid)) is not None:  # a replayed frame
                entry = self.gallery.entry(answer.individual)
                again = (answer.individual, answer.similarity, answer.new_individual)
                out.append(Sighting(*again, entry.provisional))
                continue
            out.append(self._one(embedding, source, place, self.scores.row(i)))
        return out

    def _one(
        self, embedding: np.ndarray, source: SightingSource, place: Place, scores: np.ndarray
    ) -> Sighting:
        ids = self.gallery.ids
        best = int(np.argmax(scores)) if len(scores) else -1
        own = round(float(scores[best]), 6) if best >= 0 else -1.0
        fit = self.tracklets.fit(place, embedding)  # once: both below use it
        if self.tracklets.merged(place, embedding, fit):  # two fish under one box: no tracklet
            self.merged += 1
            return self._alone(best, own, self.threshold + self.merge_match_margin)
        track = self.tracklets.link(place, embedding, fit)
        good = place.quality >= self.min_quality
        if track.individual is not None:
            individual = self.gallery.resolve(track.individual)
            column = ids.index(individual) if individual in ids else -1
            score = round(float(scores[column]), 6) if column >= 0 else own
            if not self._inherits(score, own, good) or not self._resembles(track, embedding, score):
                return Sighting(UNKNOWN, own, False, False)  # not the fish the track holds
            kept = self._add_views(individual, [(embedding, source, score)] if good else [])
            return self._matched(individual, score, kept)
        if good:
            track.views.append(embedding)
            track.sources.append(source)
            track.scores.append(own)
        group = each = np.full((1, 1), -1.0)[0]
        if track.views and len(scores):
            each = self.scores.views(track, scores if good else None)
            group = each.mean(axis=0)
            b = int(np.argmax(group))
            if group[b] >= self._known_bar(len(track.views), ids[b]) and (
                # one view alone agrees
                each[:, b].max() >= self.threshold - self.anchor_drop + self.alone_margin
            ):
                track.individual = self.gallery.resolve(ids[b])
                views = list(zip(track.views, track.sources, track.scores, strict=True))
                kept = self._add_views(track.individual, views)
                column = ids.index(track.individual) if track.individual in ids else b
                return self._matched(track.individual, round(float(scores[column]), 6), kept)
        n = len(track.views)
        if (
            good
            and n >= self.min_views
            and group.max() < self.threshold - _at(self.new_drop, n)
            and each.max() < self.threshold + self.new_view_margin  # no view alone matches
        ):
            return self._enrol(track, own)
        if good and n >= self.lone_views and each.max() < self.threshold and self._agree(track):
            return self._enrol(track, own)  # many good views, none matches any fish alone
        return self._alone(
            best, own, self.threshold + (self.alone_margin if good else self.poor_match_margin)
        )

    def _known_bar(self, n: int, individual: str) -> float:
        """The mean score over ``n`` good views that decides a tracklet as ``individual``
        (one view: clear of the threshold by ``alone_margin``, a provisional fish by
        ``alone_new_margin`` more)."""
        bar = self.threshold - _at(self.known_drop, n)
        if n == 1:
            bar += self.alone_margin
            if self.gallery.entry(self.gallery.resolve(individual)).provisional:
                bar += self.alone_new_margin
        return bar

    def _alone(self, best: int, own: float, bar: float) -> Sighting:
        """A sighting no tracklet decides: its best match (column ``best``, score ``own``)
        when that reaches ``bar`` (a provisional fish: ``alone_new_margin`` more), else
        ``unknown``; nothing enrolled."""
        if best >= 0 and own >= bar:
            individual = self.gallery.resolve(self.gallery.ids[best])
            provisional = self.gallery.entry(individual).provisional
            if not provisional or own >= bar + self.alone_new_margin:
                return Sighting(individual, own, False, provisional)
        return Sighting(UNKNOWN, own, False, False)

    def _agree(self, track: Tracklet) -> bool:
        """Whether the tracklet's good views look alike: their mean pairwise cosine reaches
        ``lone_agree`` (one fish seen clearly, not a few odd views)."""
        views = np.stack(track.views)
        n = len(views)
        return float(((views @ views.T).sum() - n) / (n * (n - 1))) >= self.lone_agree

    def _resembles(self, track: Tracklet, embedding: np.ndarray, score: float) -> bool:
        """Whether a view under the threshold for its tracklet's fish looks like the
        tracklet's earlier views (cosine at least ``inherit_agree``; over the threshold it
        needs not)."""
        if score >= self.threshold or self.inherit_agree <= 0 or len(track.linking) < 2:
            return True
        return float(np.max(np.stack(track.linking[-5:-1]) @ embedding)) >= self.inherit_agree

    def _inherits(self, score: float, own: float, good: bool) -> bool:
        """Whether a sighting of a decided tracklet is given its fish: its ``score`` for
        it near the threshold (a poor view: nearer), and no other fish better than it."""
        drop = self.inherit_drop if good else self.poor_inherit_drop
        return score >= self.threshold - drop and score >= own - self.inherit_margin

    def _matched(self, individual: str, score: float, kept: tuple) -> Sighting:
        provisional = self.gallery.entry(individual).provisional
        return Sighting(individual, score, False, provisional, bool(kept), kept)

    def _add_views(self, individual: str, views: list) -> tuple[SightingSource, ...]:
        """Add good views to a provisional individual, up to ``max_views``: those that alone
        reach the threshold for it."""
        entry = self.gallery.entry(individual)
        room = self.max_views - entry.n_embeddings
        if not entry.provisional or room <= 0 or not views:
            return ()
        column = self.gallery.ids.index(individual)
        fits = self.gallery.scores(np.stack([v[0] for v in views]))[:, column] >= self.threshold
        views = [view for view, fit in zip(views, fits, strict=True) if fit]
        kept = []
        for embedding, source, score in views[:room]:
            self.gallery.enrol(
                individual, embedding, provisional=True, source=source.uid, similarity=score
            )
            kept.append(source)
        return tuple(kept)

    def _enrol(self, track: Tracklet, own: float) -> Sighting:
        """Enrol the tracklet's good views as a new provisional fish: the id from its first
        view's frame, the deciding view (this sighting, the last) first in the record, as
        the sighting that announces the fish (a replay of it, and of no earlier view, says
        ``new_individual`` again)."""
        first, deciding = track.sources[0], track.sources[-1]
        entry = self.gallery.enrol_new(
            track.views[-1],
            source=deciding.uid,
            similarity=track.scores[-1],
            first_seen_ns=first.captured_at_ns,
            id_from=first.uid,
        )
        for embedding, source, score in zip(
            track.views[:-1], track.sources[:-1], track.scores[:-1], strict=True
        ):
            self.gallery.enrol(
                entry.id, embedding, provisional=True, source=source.uid, similarity=score
            )
        track.individual = entry.id
        self.merge_provisional(entry.id)
        kept = (deciding, *track.sources[:-1])
        return Sighting(entry.id, own, True, True, True, kept)

    def merge_provisional(self, individual: str) -> Merge | None:
        """Merge ``individual`` with the provisional fish whose views its views match best,
        when the mean best score reaches the threshold (the later into the earlier)."""
        others = [
            e
            for e in self.gallery.list()
            if e.provisional and e.merged_into is None and e.id != individual
        ]
        if not others:
            return None
        views = self.gallery.views(individual)[0]
        columns = {i: k for k, i in enumerate(self.gallery.ids)}
        group = self.gallery.scores(views).mean(axis=0)
        scored = [(float(group[columns[e.id]]), e) for e in others]
        similarity, other = max(scored, key=lambda item: item[0])
        if similarity < self.threshold:
            return None
        pair = sorted(
            (self.gallery.entry(individual), other), key=lambda e: (e.first_seen_ns, e.id)
        )
        merge = Merge(pair[1].id, pair[0].id, round(similarity, 6))
        self.gallery.merge(merge.loser, merge.survivor)
        self.merges.append(merge)
        return merge


__all__ = [
    "WHOLE_FRAME_ALONE_MARGIN",
    "WHOLE_FRAME_ALONE_NEW_MARGIN",
    "WHOLE_FRAME_INHERIT_AGREE",
    "Merge",
    "OpenSetDecider",
    "Sighting",
]
