"""Whether a whole-frame detection's outline looks like one whole fish (issue 28's gate).

numpy + OpenCV only. A detector (:mod:`.frame_detect`, :mod:`.frame_segment`) finds two
touching fish as one outline when it cannot cut them apart; the crop then holds both, and
its embedding sits between the two fish: it matched one fish's id to another's sightings and
raised "new fish" alerts (the whole-frame README diagnosis). A tail fin or a strip of a fish
found alone is sharp (the sharpness gate of :mod:`.quality` passes it) but too small to hold
the fish's pattern. Such a detection is still identified, but its view counts as poor
(quality 0): matched, never enrolled, never deciding a tracklet nor raising an alert alone.

The outline is judged by its :class:`OutlineMeasures`: its length (the box's longer side),
its length / depth, how much of its box it fills and of its convex hull (solidity), and the
deepest column's share of the box's depth (two fish one above the other, offset, leave no
column as deep as the box). One fish's outline is compact and spindle-shaped; two touching
fish make a notched, less solid outline or a box of the wrong shape. Two more doubts make
a view poor: an outline whose two ends are about as deep (which end is the head, so whether
to mirror it, is a guess: a fish turned the wrong way gives views that agree with each other
and match no fish, the pattern of a new one), and a box that meets the frame's border (the
fish is cut by it; its crop is padded).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SMALL = "small"  # the reasons a detection's view is poor
MERGED = "merged"
TURN = "turn"  # which end is the head is unclear
EDGE = "edge"  # the box meets the frame's border: the fish goes on outside it


@dataclass(frozen=True, slots=True)
class OutlineMeasures:
    """Shape measures of one detection's outline, in the full frame's pixels."""

    length: float  # the box's longer side
    aspect: float  # box width / height
    fill: float  # outline pixels / box pixels
    solidity: float  # outline pixels / convex hull pixels
    deepest: float  # deepest column of the outline / box height
    ends: float = 2.0  # mean depth of its deeper third / its shallower third (head vs tail)
    head_right: bool = False  # its right third is the deeper: the head (the fish faces right)


@dataclass(frozen=True, slots=True)
class OutlineGate:
    """Limits of one whole fish's outline. Chosen on development seeds 7,100,400-7,100,401
    (``benchmarks/fish_open_set_frames.py``): a model input is 160 px wide, so a fish
    shorter than half of it is blown up more than twice (no pattern left to match)."""

    min_length: float = 80.0
    min_aspect: float = 1.9
    max_aspect: float = 5.0
    min_fill: float = 0.47
    min_solidity: float = 0.72
    min_deepest: float = 0.8
    min_ends: float = 1.1  # under it the head-left turn is a guess (1.0: never doubted)
    edge: bool = True  # a box that meets the frame's border is a cut fish

    def __post_init__(self) -> None:
        if self.min_length < 0 or not 0 < self.min_aspect < self.max_aspect:
            msg = (
                "an outline gate needs min_length >= 0 and 0 < min_aspect < max_aspect; got "
                f"{self.min_length}, {self.min_aspect}, {self.max_aspect}"
            )
            raise ValueError(msg)

    def judge(self, m: OutlineMeasures) -> str:
        """Why the outline is not one clear whole fish (:data:`SMALL`, :data:`MERGED`,
        :data:`TURN`), or ``""``."""
        if m.length < self.min_length:
            return SMALL
        if not self.min_aspect <= m.aspect <= self.max_aspect:
            return MERGED
        if m.fill < self.min_fill or m.solidity < self.min_solidity:
            return MERGED
        if m.deepest < self.min_deepest:
            return MERGED
        return TURN if m.ends < self.min_ends else ""

    def judge_in_frame(
        self, m: OutlineMeasures, box: tuple[int, int, int, int], frame: tuple[int, ...]
    ) -> str:
        """:meth:`judge`, then :data:`EDGE` when ``box`` meets the border of a frame of
        shape ``frame`` (H, W, ...): part of the fish is outside it."""
        why = self.judge(m)
        x, y, w, h = box
        if not why and self.edge and (x <= 0 or y <= 0 or x + w >= frame[1] or y + h >= frame[0]):
            return EDGE
        return why


def measure_outline(outline: np.ndarray, scale: int = 1) -> OutlineMeasures:
    """The measures of a box-sized boolean outline found at 1 / ``scale`` of the frame."""
    if outline.ndim != 2 or not outline.any():
        msg = f"expected a non-empty 2-d outline mask, got shape {outline.shape}"
        raise ValueError(msg)
    h, w = outline.shape
    mask = outline.astype(np.uint8)
    area = float(mask.sum())
    columns = mask.sum(axis=0).astype(np.float64)
    third = max(1, w // 3)
    left, right = columns[:third].mean(), columns[-third:].mean()
    shallow, deep = sorted((left, right))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = float(sum(cv2.contourArea(cv2.convexHull(c)) for c in contours))
    return OutlineMeasures(
        length=float(max(w, h) * scale),
        aspect=w / h,
        fill=area / (w * h),
        # a thin outline's hull (pixel centres) can be smaller than its pixel count
        solidity=min(1.0, area / hull) if hull > 0 else 1.0,
        deepest=float(columns.max()) / h,
        ends=float(deep / max(shallow, 1e-9)),
        head_right=bool(right > left),  # the thin caudal peduncle is the tail's end
    )


def judge_outline(outline: np.ndarray, scale: int = 1, gate: OutlineGate | None = None) -> str:
    """Why a detection's outline is not one whole fish, or ``""`` (see :class:`OutlineGate`)."""
    return (gate or OutlineGate()).judge(measure_outline(outline, scale))


__all__ = [
    "EDGE",
    "MERGED",
    "SMALL",
    "TURN",
    "OutlineGate",
    "OutlineMeasures",
    "judge_outline",
    "measure_outline",
]
