"""How the answers to an open-set fish stream line up with the truth (issue 28's figures).

Each sighting's answer is read as its record says it (the id given then, through the merges
known at the end of the stream: a merge is recorded, so a reader resolves ids with it).
``unknown`` (not decided: a view too poor, or a fish not yet seen well enough) is no id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from seawatch.contracts.records import UNKNOWN


@dataclass(frozen=True, slots=True)
class Answer:
    """What the head said of one sighting."""

    individual: str
    new_individual: bool  # this sighting enrolled a new fish (raises a "new fish" alert)


@dataclass(frozen=True, slots=True)
class OpenSetScore:
    """The open-set figures of one stream."""

    sightings: int
    known_sightings: int
    new_sightings: int
    known_declared_new: float  # share of known sightings under a new (provisional) id
    known_wrong: float  # share of known sightings under another known fish's name
    known_right: float
    known_unknown: float  # share of known sightings left undecided
    new_fish: int  # strangers that appeared
    ids_per_new_fish: float  # distinct ids a stranger's sightings ended under, mean
    new_matched_known: float  # share of strangers' sightings given a known fish's name
    new_unknown: float  # share of strangers' sightings left undecided
    ids: int  # distinct ids given (after merges)
    mixed_ids: int  # ids holding sightings of two or more true fish
    mixed_id_share: float
    new_fish_alerts: int  # sightings that enrolled a new fish
    alerts_per_new_fish: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score_open_set(
    truth: Sequence[tuple[str, bool]],
    answers: Sequence[Answer],
    resolve: Callable[[str], str] = lambda individual: individual,
) -> OpenSetScore:
    """Score ``answers`` against ``truth`` (per sighting: the fish's name, known or not)."""
    if len(truth) != len(answers):
        msg = f"{len(answers)} answers for {len(truth)} sightings"
        raise ValueError(msg)
    by_id: dict[str, Counter] = defaultdict(Counter)
    ids_of: dict[str, set[str]] = defaultdict(set)
    known_n = new_n = 0
    declared_new = wrong = right = known_unknown = new_known = new_unknown = 0
    for (fish, known), answer in zip(truth, answers, strict=True):
        individual = resolve(answer.individual) if answer.individual != UNKNOWN else UNKNOWN
        is_new_id = individual != UNKNOWN and individual.startswith("fish-new")
        if individual != UNKNOWN:
            by_id[individual][fish] += 1
            ids_of[fish].add(individual)
        if known:
            known_n += 1
            right += individual == fish
            declared_new += is_new_id
            known_unknown += individual == UNKNOWN
            wrong += individual not in (fish, UNKNOWN) and not is_new_id
        else:
            new_n += 1
            new_unknown += individual == UNKNOWN
            new_known += individual != UNKNOWN and not is_new_id
    strangers = {fish for fish, known in truth if not known}
    alerts = sum(a.new_individual for a in answers)
    mixed = sum(len(c) > 1 for c in by_id.values())
    return OpenSetScore(
        sightings=len(truth),
        known_sightings=known_n,
        new_sightings=new_n,
        known_declared_new=_share(declared_new, known_n),
        known_wrong=_share(wrong, known_n),
        known_right=_share(right, known_n),
        known_unknown=_share(known_unknown, known_n),
        new_fish=len(strangers),
        ids_per_new_fish=round(sum(len(ids_of[f]) for f in strangers) / max(1, len(strangers)), 4),
        new_matched_known=_share(new_known, new_n),
        new_unknown=_share(new_unknown, new_n),
        ids=len(by_id),
        mixed_ids=mixed,
        mixed_id_share=_share(mixed, len(by_id)),
        new_fish_alerts=alerts,
        alerts_per_new_fish=round(alerts / max(1, len(strangers)), 4),
    )


def _share(n: int, of: int) -> float:
    return round(n / of, 4) if of else 0.0


__all__ = ["Answer", "OpenSetScore", "score_open_set"]
