"""The plankton head's "most likely wrong" scores of a whole poll in one pass
(``models/plankton/poll_ranking.py``, issue 26): each score equal, bit for bit, to the one
the frame's own call gave (the stored records do not change)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from seawatch.contracts.card import load_card
from seawatch.models.plankton.poll_ranking import poll_wrongness


class _Answer(NamedTuple):
    taxon: str
    confidence: float
    top_k: list[tuple[str, float]]


def _poll(classes: list[str], seed: int) -> tuple[list[list[_Answer]], list[bool]]:
    """A recorded-like poll: one-object ROI frames and full frames of 2-40 objects."""
    rng = np.random.default_rng(seed)
    answers_of, full = [], []
    for _ in range(300):
        is_full = bool(rng.random() < 0.2)
        n = int(rng.integers(2, 41)) if is_full else 1
        probs = rng.dirichlet(np.full(len(classes), 0.3), n)
        frame = []
        for p in probs:
            order = np.argsort(-p)[:3]
            top = [(classes[i], float(p[i])) for i in order]
            taxon = top[0][0] if top[0][1] > 0.4 else "unknown"
            frame.append(_Answer(taxon, top[0][1], top))
        answers_of.append(frame)
        full.append(is_full)
    answers_of.insert(7, [])  # a frame without objects
    full.insert(7, True)
    return answers_of, full


@pytest.mark.parametrize("seed", [7_100_611, 7_100_612])
def test_a_polls_scores_equal_each_frames_own_call_bit_for_bit(model_dir, seed):
    card = load_card(model_dir)
    ranking = card.ranking_calibration()
    assert ranking is not None
    answers_of, full = _poll(list(card.class_names), seed)
    scores = poll_wrongness(ranking, answers_of, full)
    assert [len(s) for s in scores] == [len(a) for a in answers_of]
    for frame_scores, answers, is_full in zip(scores, answers_of, full, strict=True):
        if not answers:
            continue
        alone = ranking.scores(  # what the head computed per frame before
            np.array([a.confidence for a in answers]),
            np.array([[p for _, p in a.top_k] for a in answers]),
            [a.taxon for a in answers],
            np.full(len(answers), is_full),
        )
        assert frame_scores == [float(s) for s in alone]  # exact, not approximate


def test_without_a_calibration_every_score_is_none():
    answers = [[_Answer("a", 0.9, [("a", 0.9)])], [], [_Answer("b", 0.5, [("b", 0.5)])] * 2]
    assert poll_wrongness(None, answers, [False, True, True]) == [[None], [], [None, None]]


def test_groups_that_do_not_add_up_are_refused(model_dir):
    ranking = load_card(model_dir).ranking_calibration()
    with pytest.raises(ValueError, match="do not add up"):
        ranking.grouped_scores(np.array([0.9]), np.array([[0.9]]), ["a"], np.array([False]), [2])
