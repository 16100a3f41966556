"""The "most likely wrong" score of a whole poll's objects in one pass (the plankton head's
finish): the card's :class:`~seawatch.contracts.ranking.RankingCalibration` over every
frame's answers at once, each score equal to the one its frame's own call would give.

One call per frame cost about 80 us of the loop for a one-object ROI frame (numpy's
per-call overhead, issue 26); one call per poll costs a few us a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from seawatch.contracts.ranking import RankingCalibration


class Answer(Protocol):
    """What the score reads of a prediction (``head.Prediction``)."""

    taxon: str
    confidence: float
    top_k: Sequence[tuple[str, float]]


def poll_wrongness(
    ranking: RankingCalibration | None,
    answers_of: Sequence[Sequence[Answer]],
    full_frame: Sequence[bool],
) -> list[list[float | None]]:
    """Each frame's scores (``answers_of``: its answers; ``full_frame``: whether it was a
    full frame), in order; None for every answer without a calibration."""
    answers = [p for frame_answers in answers_of for p in frame_answers]
    if ranking is None or not answers:
        return [[None] * len(a) for a in answers_of]
    full = [f for f, a in zip(full_frame, answers_of, strict=True) for _ in a]
    scores = ranking.grouped_scores(
        np.array([p.confidence for p in answers]),
        np.array([[prob for _, prob in p.top_k] for p in answers]),
        [p.taxon for p in answers],
        np.array(full),
        [len(a) for a in answers_of],
    ).tolist()
    out: list[list[float | None]] = []
    start = 0
    for a in answers_of:
        out.append(scores[start : start + len(a)])
        start += len(a)
    return out


__all__ = ["poll_wrongness"]
