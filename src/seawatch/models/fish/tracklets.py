"""Tracklets: the sightings of one fish during one pass in front of one camera, linked.

numpy only. A sighting joins the open tracklet of its camera that it fits best: the
tracklet was last seen at most ``gap_s`` before (and not in this very frame: one fish is in
a frame once), its box is near where the tracklet's last box was (when both have boxes:
the centre moved at most ``max_move`` box widths per second), and its embedding resembles
one of the tracklet's views (cosine at least ``link_similarity``). Otherwise it opens a new
tracklet. Per camera, tracklets older than ``gap_s`` are closed as time goes on.

Each tracklet keeps its velocity (from its last two boxes), so where its fish should be now
is known: :meth:`Tracklets.merged` asks the :class:`~seawatch.models.fish.occlusion.
MergeRule` whether a detection lies over two fish's predicted boxes (two fish found as one);
the decider then links it to none.

The head decides a tracklet as a group (:mod:`seawatch.models.fish.open_set`): one odd view
does not make a new fish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.occlusion import MergeRule, covered

Box = tuple[float, float, float, float]  # x, y, w, h in the frame, pixels
# A sighting joins a tracklet only when its view resembles one of the tracklet's last views
# this much (cosine). On whole frames (the head's ``whole_frames``) 0.5 let a look-alike that
# swam into a fish's place join its tracklet: the tracklet's views were then enrolled as one
# new fish, or inherited its id, and the id held two fish. There a view over a tracked fish
# that joins no tracklet is a merge (occlusion.py: never enrolled), so the stricter link
# costs little (issue 28, fifth round, development seeds; figures in the fish README). Crops
# have no such rule: a view that joins no tracklet opens one, and the crop stream lost
# (development 7,100,400: known declared new 1.2 -> 2.3 %), so crops keep 0.5.
LINK_SIMILARITY = 0.5
WHOLE_FRAME_LINK_SIMILARITY = 0.6
_UNSET = object()  # link / merged: the fit not asked yet


@dataclass(frozen=True, slots=True)
class Place:
    """Where and when a sighting was made, and how usable its view is."""

    camera: str
    captured_at_ns: int
    box: Box | None = None  # the fish's box in the frame (None: a crop sent alone)
    quality: float = math.inf  # :func:`~seawatch.models.fish.quality.view_quality`
    detected: bool = False  # the box is a whole frame's detection (it may hold two fish)


@dataclass(slots=True)
class Tracklet:
    """One fish's pass in front of one camera: its views so far and what was decided."""

    camera: str
    last_ns: int
    last_box: Box | None
    linking: list[np.ndarray] = field(default_factory=list)  # every view, to link the next
    views: list[np.ndarray] = field(default_factory=list)  # the good views (quality gate)
    sources: list[SightingSource] = field(default_factory=list)  # of the good views
    scores: list[float] = field(default_factory=list)  # the good views' best gallery score
    individual: str | None = None  # decided: the known fish, or the new id it enrolled
    view_scores: list[np.ndarray] = field(default_factory=list)  # the good views' gallery
    scored_at: int = -1  # scores (score_cache.py), at this gallery version
    sightings: int = 0
    key: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box's centre, pixels a second

    def predicted(self, now_ns: int) -> Box | None:
        """Where the fish's box should be at ``now_ns`` (its last box moved on)."""
        if self.last_box is None:
            return None
        x, y, w, h = self.last_box
        seconds = (now_ns - self.last_ns) / 1e9
        return (x + self.velocity[0] * seconds, y + self.velocity[1] * seconds, w, h)


class Tracklets:
    """The open tracklets of every camera."""

    def __init__(
        self,
        *,
        gap_s: float = 1.5,
        link_similarity: float = LINK_SIMILARITY,
        max_move: float = 0.8,
        merge_rule: MergeRule | None = None,
    ) -> None:
        if gap_s <= 0 or not -1 <= link_similarity <= 1 or max_move <= 0:
            msg = (
                "tracklets need gap_s > 0, link_similarity in -1..1 and max_move > 0; got "
                f"{gap_s}, {link_similarity}, {max_move}"
            )
            raise ValueError(msg)
        self.gap_ns = int(gap_s * 1e9)
        self.link_similarity = link_similarity
        self.max_move = max_move
        self.merge_rule = merge_rule or MergeRule()
        self._open: dict[str, list[Tracklet]] = {}
        self.opened = 0

    def fit(self, place: Place, embedding: np.ndarray) -> Tracklet | None:
        """The open tracklet this sighting would join (None: it fits none, a new one opens);
        closes the camera's tracklets older than ``gap_s``. Computed once a sighting and
        handed to :meth:`merged` and :meth:`link` (the similarity is its cost)."""
        tracks = self._open.setdefault(place.camera, [])
        now = place.captured_at_ns
        tracks[:] = [t for t in tracks if now - t.last_ns <= self.gap_ns]
        return self._fit(tracks, place, embedding)

    def link(self, place: Place, embedding: np.ndarray, fit: object = _UNSET) -> Tracklet:
        """The tracklet this sighting belongs to (an open one it fits, or a new one);
        ``fit``: :meth:`fit`'s answer for it, when already asked."""
        best = self.fit(place, embedding) if fit is _UNSET else fit
        tracks = self._open.setdefault(place.camera, [])
        now = place.captured_at_ns
        if not isinstance(best, Tracklet):
            best = Tracklet(place.camera, now, place.box)
            tracks.append(best)
            self.opened += 1
        best.velocity = _velocity(best, place)
        best.last_ns, best.last_box = now, place.box
        best.linking.append(embedding)
        best.sightings += 1
        return best

    def _fit(self, tracks: list[Tracklet], place: Place, embedding: np.ndarray) -> Tracklet | None:
        """The open tracklet (of an earlier frame, near) whose views ``embedding`` resembles
        most, at least ``link_similarity``; None: it fits none."""
        best, best_score = None, self.link_similarity
        for track in tracks:
            if track.last_ns >= place.captured_at_ns or not self._near(track, place):
                continue
            score = float(np.max(np.stack(track.linking[-4:]) @ embedding))
            if score >= best_score:
                best, best_score = track, score
        return best

    def merged(self, place: Place, embedding: np.ndarray, fit: object = _UNSET) -> str:
        """Why ``place``'s box holds two fish by the camera's live tracklets (their boxes
        predicted for its time; :class:`~seawatch.models.fish.occlusion.MergeRule`), or
        ``""`` (a crop, sent alone or with its box, holds one fish: never a merge).
        ``embedding``: its view, to tell whether it links to one of them (``fit``:
        :meth:`fit`'s answer, when already asked)."""
        if place.box is None or not place.detected or self.merge_rule.min_cover == 0:
            return ""
        now = place.captured_at_ns
        tracks = [t for t in self._open.get(place.camera, []) if 0 < now - t.last_ns <= self.gap_ns]
        live = [(t.last_ns, b) for t in tracks if (b := t.predicted(now)) is not None]
        if not any(covered(b, place.box) >= self.merge_rule.min_cover for _, b in live):
            return ""  # over no tracked fish (most detections): no similarity to compute
        best = self._fit(tracks, place, embedding) if fit is _UNSET else fit
        links = best is not None
        return self.merge_rule.judge(place.box, live, links)

    def _near(self, track: Tracklet, place: Place) -> bool:
        if track.last_box is None or place.box is None:
            return True
        (x0, y0, w0, h0), (x1, y1, w1, h1) = track.last_box, place.box
        seconds = max((place.captured_at_ns - track.last_ns) / 1e9, 0.1)
        moved = math.hypot(x1 + w1 / 2 - x0 - w0 / 2, y1 + h1 / 2 - y0 - h0 / 2)
        return moved <= self.max_move * max(w0, w1) * seconds + 0.25 * max(w0, w1)

    def clear(self) -> None:
        """Close every open tracklet."""
        self._open.clear()


def _velocity(track: Tracklet, place: Place) -> tuple[float, float]:
    """The tracklet's box centre's velocity once ``place`` joins it (none without boxes)."""
    if track.last_box is None or place.box is None or place.captured_at_ns <= track.last_ns:
        return track.velocity
    (x0, y0, w0, h0), (x1, y1, w1, h1) = track.last_box, place.box
    seconds = (place.captured_at_ns - track.last_ns) / 1e9
    return ((x1 + w1 / 2 - x0 - w0 / 2) / seconds, (y1 + h1 / 2 - y0 - h0 / 2) / seconds)


__all__ = [
    "LINK_SIMILARITY",
    "WHOLE_FRAME_LINK_SIMILARITY",
    "Box",
    "Place",
    "Tracklet",
    "Tracklets",
]
