"""Match thresholds per gallery size: the same false-match rate on a gallery of any size.

numpy only. An unknown fish is falsely matched when its **best** score over the gallery's
individuals reaches the threshold, and the best of N impostor scores grows with N: one
threshold calibrated against the card's gallery (168 individuals) lets more than the target
rate of strangers match a larger gallery and fewer a smaller one. Here the calibration
sightings' scores against each gallery individual (Q x G, individuals never trained on nor
enrolled against the card's gallery) give the false-match rate at threshold t for a gallery
of N individuals:

- N <= G: the **exact mean over every gallery of N of the G individuals** (no sampling):
  a sighting with k of its G scores under t stays unmatched in C(k, N) / C(G, N) of them.
  Each sighting keeps its own scores, so a sighting that resembles many fish (their scores
  are correlated) counts as such; a pooled max-of-N (F^N over all scores) would treat every
  sighting alike and put the threshold too low for the look-alikes behind false matches.
- N > G: a gallery of N is N / G galleries of G drawn independently:
  1 - (1 - FMR(t, G)) ** (N / G); the rate at G is well measured, the tail beyond it is not
  (480 sightings resolve a rate of 0.2 %), so the table stops at about three times G.

:func:`thresholds_by_size` gives the lowest threshold (4 decimals) whose rate is at most the
target for each size of :data:`SIZES` (and G itself, where it equals the single calibrated
threshold); :class:`SizeThresholds` reads such a table from a card and interpolates it in
log N, clamped at its ends.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np

SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # gallery sizes of a card's table (and G)
KEY = "match_similarity"  # the threshold a card's table is for
_GRID = 10_000  # thresholds on a grid of 1e-4, as metrics.threshold_for_false_match_rate


def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])


def false_match_rate(scores: np.ndarray, threshold: float, size: int) -> float:
    """The share of the sightings (rows of ``scores``, Q x G: each sighting's score for each
    gallery individual) whose best score over a gallery of ``size`` individuals reaches
    ``threshold``, on average over the galleries (see the module docstring)."""
    scores = _check(scores)
    if size < 1:
        msg = f"gallery size must be at least 1, got {size}"
        raise ValueError(msg)
    g = scores.shape[1]
    if size > g:
        at_g = false_match_rate(scores, threshold, g)
        return float(1.0 - (1.0 - at_g) ** (size / g))
    below = (scores < threshold).sum(axis=1)
    lf = _log_factorials(g)
    unmatched = np.zeros(len(below))
    ok = below >= size
    k = below[ok]
    log_ratio = lf[k] - lf[k - size] - (lf[g] - lf[g - size])
    unmatched[ok] = np.exp(log_ratio)
    return float(1.0 - unmatched.mean())


def threshold_for_size(scores: np.ndarray, rate: float, size: int) -> float:
    """The lowest threshold (4 decimals) whose false-match rate on a gallery of ``size``
    individuals is at most ``rate``."""
    if not 0.0 <= rate < 1.0:
        msg = f"false-match rate must be in [0, 1), got {rate}"
        raise ValueError(msg)
    scores = _check(scores)
    lo, hi = math.floor(scores.min() * _GRID), math.floor(scores.max() * _GRID) + 1
    while lo < hi:  # the rate falls as the threshold rises: the first grid point that fits
        mid = (lo + hi) // 2
        if false_match_rate(scores, round(mid / _GRID, 4), size) <= rate + 1e-12:
            hi = mid
        else:
            lo = mid + 1
    return round(lo / _GRID, 4)


def thresholds_by_size(
    scores: np.ndarray, rate: float, sizes: Iterable[int] = SIZES
) -> list[tuple[int, float]]:
    """(gallery size, threshold) for each of ``sizes`` and the calibration gallery's own
    size G (``scores``' columns), sizes beyond three times G left out (see the module
    docstring); the threshold at G is the single calibrated one."""
    g = _check(scores).shape[1]
    chosen = sorted({int(n) for n in sizes if 1 <= n <= 3 * g} | {g})
    return [(n, threshold_for_size(scores, rate, n)) for n in chosen]


class SizeThresholds:
    """A table of (gallery size, threshold) pairs, read in log N between its sizes and
    clamped at its ends (a gallery smaller than the first size gets the first threshold)."""

    def __init__(self, table: Sequence[Sequence[float]]) -> None:
        pairs = [(int(n), float(t)) for n, t in table]
        sizes = [n for n, _ in pairs]
        if not pairs or sizes[0] < 1 or any(b <= a for a, b in itertools.pairwise(sizes)):
            msg = f"a gallery-size table needs increasing sizes >= 1, got {sizes}"
            raise ValueError(msg)
        self.table = pairs
        self._log_n = np.log([n for n, _ in pairs])
        self._t = np.array([t for _, t in pairs])

    def at(self, size: int) -> float:
        """The threshold for a gallery of ``size`` individuals (4 decimals)."""
        return round(float(np.interp(math.log(max(size, 1)), self._log_n, self._t)), 4)

    @classmethod
    def from_card(cls, card, key: str = KEY) -> SizeThresholds | None:
        """The card's table for threshold ``key`` (None: the card has none)."""
        tables = getattr(card, "thresholds_by_gallery_size", None) or {}
        return cls(tables[key]) if key in tables else None


def _check(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or not scores.size:
        msg = f"scores must be sightings x gallery individuals, got shape {scores.shape}"
        raise ValueError(msg)
    return scores


__all__ = [
    "KEY",
    "SIZES",
    "SizeThresholds",
    "false_match_rate",
    "threshold_for_size",
    "thresholds_by_size",
]
