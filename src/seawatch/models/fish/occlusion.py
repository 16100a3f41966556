"""Two fish under one box, seen from the tracks (issue 28's occlusion rule).

numpy free, pure geometry. When two fish overlap in a whole frame the detector often finds
them as one outline of normal shape (the outline gate of :mod:`.outline_gate` cannot tell
it from one fish) and its crop holds both: its embedding sits between the two, it matched
one fish's id to the other's sightings (issue 28: 4 of the 7 ids mixing two fish on the
reserved whole-frame draws after the gate). The camera's live tracklets say where each fish
was a moment ago, as multi-object trackers use them to see an occlusion coming: a detection
that covers most of the predicted boxes of two live tracklets seen in one frame, or of one
tracklet while its view resembles none of the camera's tracklets (a fish come over a tracked
one), is a *merge*. The decider
(:class:`~seawatch.models.fish.open_set.OpenSetDecider`) links a merge to no tracklet, gives
it no quality (never enrolled, never deciding) and reports it as a known fish only far above
the threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x, y, w, h in the frame, pixels

OVERLAP = "overlap"  # the reasons a detection is a merge
GROWN = "grown"
HIDDEN = "hidden"  # over a tracked fish, but its view is unlike it: another fish on top


def covered(box: Box, by: Box) -> float:
    """Share of ``box``'s area that ``by`` covers (0 for an empty box)."""
    x0, y0, w0, h0 = box
    x1, y1, w1, h1 = by
    dx = min(x0 + w0, x1 + w1) - max(x0, x1)
    dy = min(y0 + h0, y1 + h1) - max(y0, y1)
    area = w0 * h0
    return max(0.0, dx) * max(0.0, dy) / area if area > 0 else 0.0


@dataclass(frozen=True, slots=True)
class MergeRule:
    """When a detection is two fish under one box. ``min_cover``: the share of a tracklet's
    predicted box it must cover to hold that fish (0 turns every test off); ``max_growth``:
    how much larger in area than a tracklet it holds it may be (0: not tested); ``hidden``:
    a box over a tracked fish whose view links to no tracklet is another fish on top of it.

    Chosen on development seeds of ``benchmarks/fish_open_set_frames.py`` (figures in the
    main README, *Fish in the open set*): two tracklets alone (``hidden`` off) caught
    neither mixed id there (a fish arriving on top of another has no tracklet yet); growth
    caught nothing more and cost known sightings (a fish's box grows when the detector
    finds its fins again), so it is off."""

    min_cover: float = 0.5
    max_growth: float = 0.0
    hidden: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_cover <= 1 or (self.max_growth != 0 and self.max_growth <= 1):
            msg = (
                "a merge rule needs min_cover in 0..1 (0: off) and max_growth > 1 (0: off); "
                f"got {self.min_cover}, {self.max_growth}"
            )
            raise ValueError(msg)

    def judge(self, box: Box, tracks: Iterable[tuple[int, Box]], links: bool = True) -> str:
        """Why ``box`` holds two fish (:data:`OVERLAP`, :data:`GROWN`, :data:`HIDDEN`), or
        ``""``, given the camera's live tracklets seen before this frame: (when last seen,
        predicted box), and whether its view ``links`` to one of them. Two tracklets are
        two fish only when they were seen in one frame (a fish is in a frame once; one
        fish's track broken in two is not two fish)."""
        if self.min_cover == 0:
            return ""
        held = [(seen, b) for seen, b in tracks if covered(b, box) >= self.min_cover]
        seen_in = Counter(seen for seen, _ in held)
        if any(n >= 2 for n in seen_in.values()):
            return OVERLAP
        area = box[2] * box[3]
        if self.max_growth and any(area > self.max_growth * b[2] * b[3] for _, b in held):
            return GROWN
        if self.hidden and held and not links:
            return HIDDEN
        return ""


__all__ = ["GROWN", "HIDDEN", "OVERLAP", "Box", "MergeRule", "covered"]
