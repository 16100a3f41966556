"""The "most likely wrong" review queue: a per-object score, higher = more likely wrong.

A model whose card carries a fitted ranking calibration is ranked by it (see **Fitted, per
model** below). Without one, the rule is **least confidence**: ``wrongness = 1 -
confidence``, the top-1 softmax probability the plankton head stores for every object. The
daemon computes the score at store time
from what it stores anyway (so it can be an indexed column) and the queue is read in
decreasing order.

Why this rule (``benchmarks/review_queue.py``; chosen on the development cruise, seed
7_100_011, 10,000 objects with 825 model errors; share of the errors found in the first 10 %
reviewed):

- least confidence (``1 - p1``): 79.8 %
- temperature-calibrated ``1 - p1`` (temperature fitted on a validation cruise): 79.6 %.
  The committed model already applies its calibrated temperature in-graph; the refit moves
  it by 2 %, so it ranks almost like the plain probability and would tie the score to
  one model's constant;
- margin (``1 - (p1 - p2)``): 78.9 %;
- entropy over the stored top-k (plus the rest of the mass as one outcome): 78.8 %.

The four are within noise of each other (one standard error is about 1.5 points with ~800
errors). On the reserved cruise (seed 7_900_025, looked at only after the choice; 760 errors)
least confidence finds 79.6 %, just under the issue's 80 % target (margin 80.1 %, entropy
79.2 %, temperature 79.6 %). A class-aware logistic score on the same fields plus the top-1
taxon reaches 83 %, but needs weights fitted per model, so it is a reference, not the rule.

Least confidence also has a property the others lack: it is monotone in the quantity that
decides ``unknown`` (top-1 probability under the card's ``unknown_confidence``), so every
``unknown`` object, which always needs a reviewer, comes before every named one, whatever the
threshold. It needs no constant fitted to a model, so it survives a model swap. Scores of
objects stored under different models are comparable only as far as both models are
calibrated (the plankton cards' models are, by temperature scaling).

**Fitted, per model** (:class:`RankingCalibration`): where a model's card carries a
``ranking`` calibration (written by ``seawatch train plankton-ranking`` on a labelled
validation cruise: synthetic by default, or the user's own validated objects), the head
scores each object with it instead: a logistic regression, P(the model is wrong about this
object), on what is known at store time: ``log(1 - p1)``, ``log(p1 - p2)``, the entropy of
the top-k (plus the rest of the mass as one outcome), whether the object was segmented out
of a full frame, and a one-hot of the stored taxon (``unknown`` included). Segmented
objects are wrong far more often than single-object ROIs, and some taxa far more often
than others: what ``1 - p1`` alone cannot see. Fitted on the validation cruise 7_100_013
(10,000 objects, 846 errors), it finds 83.0 % of the errors in the first 10 % on a fresh
reserved cruise (seed 7_900_026, 793 errors; least confidence 79.6 %), 83.7 % on the
reserved cruise seen before (7_900_025) and 82.6 % on the development cruise, where the
log terms were chosen over linear ``1 - p1`` and ``p1 - p2`` (83.2 % at 10 %, but behind at
5 and 20 %: within noise). It does not guarantee that every ``unknown`` object comes first;
with the committed card's weights every one did on the development cruise.
:func:`wrongness_of` stays the fallback for models without a calibration. The scoring is
numpy only: the card stores the coefficients.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RULE = "least_confidence"  # 1 - top-1 probability


def wrongness(confidence: np.ndarray, second: np.ndarray | None = None) -> np.ndarray:
    """Vectorised score (float64, in [0, 1] for probabilities): ``1 - confidence``.

    ``second`` (the runner-up probabilities) is accepted so callers pass what the store has
    whatever the rule; the least-confidence rule does not use it. Its shape must match.
    """
    p1 = np.asarray(confidence, dtype=np.float64)
    if second is not None and np.shape(second) != p1.shape:
        msg = f"second has shape {np.shape(second)}, confidence {p1.shape}; they must match"
        raise ValueError(msg)
    return 1.0 - p1


def wrongness_of(confidence: float, top_k: Sequence[tuple[str, float]] = ()) -> float:
    """The score of one stored object (its ``confidence`` and ``top_k`` pairs), as
    :func:`wrongness` computes it for many."""
    second = top_k[1][1] if len(top_k) > 1 else 0.0
    return float(wrongness(np.array([confidence]), np.array([second]))[0])


FITTED_RULE = "fitted_logistic"  # RankingCalibration, per model
NUMERIC_FEATURES = ("log(1-p1)", "log(p1-p2)", "entropy_top_k", "full_frame")
_EPS = 1e-6  # floor under 1 - p1 and the margin before the log


def ranking_features(
    confidence: np.ndarray,
    top_k: np.ndarray,
    taxon: Sequence[str] | np.ndarray,
    full_frame: np.ndarray,
    taxa: Sequence[str],
) -> np.ndarray:
    """The calibration's inputs for N objects (N x (4 + len(taxa)), float64).

    ``confidence`` (N) is the top-1 probability, ``top_k`` (N x k) the stored top-k
    probabilities in decreasing order (k >= 1; a missing runner-up counts as 0),
    ``taxon`` the stored taxon (``unknown`` under the card's threshold) and ``full_frame``
    whether the object was segmented out of a full frame. Columns: :data:`NUMERIC_FEATURES`,
    then one per name in ``taxa`` (a taxon not among them: all zeros).
    """
    p1 = np.asarray(confidence, dtype=np.float64).reshape(-1)
    k = np.asarray(top_k, dtype=np.float64).reshape(len(p1), -1)
    second = k[:, 1] if k.shape[1] > 1 else np.zeros(len(p1))
    rest = np.clip(1.0 - k.sum(axis=1, keepdims=True), 0.0, None)
    mass = np.clip(np.concatenate([k, rest], axis=1), 0.0, None)
    entropy = -(mass * np.log(np.clip(mass, 1e-12, None))).sum(axis=1)
    numeric = np.stack(
        [
            np.log(np.clip(1.0 - p1, 0.0, None) + _EPS),
            np.log(np.clip(p1 - second, 0.0, None) + _EPS),
            entropy,
            np.asarray(full_frame, dtype=np.float64).reshape(len(p1)),
        ],
        axis=1,
    )
    names = np.asarray(taxon, dtype=object).reshape(len(p1))
    onehot = np.array([[name == t for t in taxa] for name in names], np.float64)
    return np.concatenate([numeric, onehot.reshape(len(p1), len(taxa))], axis=1)


@dataclass(frozen=True, slots=True)
class RankingCalibration:
    """A model's fitted "most likely wrong" score: P(wrong) by logistic regression.

    ``weights`` go with :meth:`feature_names` (:data:`NUMERIC_FEATURES`, then one per
    ``taxa`` entry); ``top_k`` is how many candidates the entropy reads (those of the fit:
    more stored ones are ignored, fewer leave their mass to the rest); ``fitted`` records
    how and on what it was fitted (free-form, kept in the card). :meth:`score` is in
    (0, 1); higher = more likely wrong.
    """

    taxa: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    top_k: int = 3
    fitted: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = len(NUMERIC_FEATURES) + len(self.taxa)
        if len(self.weights) != expected:
            msg = (
                f"ranking calibration has {len(self.weights)} weights; its features "
                f"({', '.join(NUMERIC_FEATURES)} and {len(self.taxa)} taxa) need {expected}"
            )
            raise ValueError(msg)
        if self.top_k < 1:
            raise ValueError(f"ranking calibration top_k must be at least 1, got {self.top_k}")
        if len(set(self.taxa)) != len(self.taxa):
            raise ValueError(f"ranking calibration names a taxon twice: {list(self.taxa)}")
        if not all(math.isfinite(w) for w in (*self.weights, self.bias)):
            raise ValueError("ranking calibration weights must be finite numbers")

    def feature_names(self) -> list[str]:
        """One name per weight, in order."""
        return [*NUMERIC_FEATURES, *(f"taxon={t}" for t in self.taxa)]

    def scores(
        self,
        confidence: np.ndarray,
        top_k: np.ndarray,
        taxon: Sequence[str] | np.ndarray,
        full_frame: np.ndarray,
    ) -> np.ndarray:
        """Vectorised :meth:`score` (see :func:`ranking_features` for the inputs)."""
        return self.grouped_scores(confidence, top_k, taxon, full_frame, [len(confidence)])

    def grouped_scores(
        self,
        confidence: np.ndarray,
        top_k: np.ndarray,
        taxon: Sequence[str] | np.ndarray,
        full_frame: np.ndarray,
        groups: Sequence[int],
    ) -> np.ndarray:
        """:meth:`scores` of many frames' objects at once (``groups``: the objects of each
        frame, in order, summing to N): the features in one pass, the weighted sum per group
        as :meth:`scores` of that group alone takes it (a matrix-vector product may round
        the last bit otherwise for more rows), so each score equals the frame's own call."""
        k = np.asarray(top_k, dtype=np.float64)
        k = k.reshape(len(k), -1)[:, : self.top_k]
        x = ranking_features(confidence, k, taxon, full_frame, self.taxa)
        if sum(groups) != len(x):
            raise ValueError(f"groups {list(groups)} do not add up to the {len(x)} objects")
        w = np.asarray(self.weights, dtype=np.float64)
        bounds = np.cumsum([0, *groups])
        products = [x[a:b] @ w for a, b in itertools.pairwise(bounds) if b > a]
        z = (np.concatenate(products) if products else np.zeros(0)) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))

    def score(
        self,
        confidence: float,
        top_k: Sequence[tuple[str, float]],
        taxon: str,
        full_frame: bool,
    ) -> float:
        """P(wrong) of one object from what the store keeps: its ``confidence``, ``top_k``
        pairs (taxon, probability), stored ``taxon`` and whether its frame was a full one."""
        probs = np.array([[p for _, p in top_k] or [confidence]], dtype=np.float64)
        return float(self.scores(np.array([confidence]), probs, [taxon], np.array([full_frame]))[0])

    def to_dict(self) -> dict[str, Any]:
        """The card's ``ranking`` value (JSON types only)."""
        return {
            "rule": FITTED_RULE,
            "features": self.feature_names(),
            "taxa": list(self.taxa),
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            "top_k": self.top_k,
            "fitted": dict(self.fitted),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RankingCalibration:
        """Read :meth:`to_dict`'s output; ValueError when it is not one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a ranking calibration is a mapping, got {type(data).__name__}")
        rule = data.get("rule", FITTED_RULE)
        if rule != FITTED_RULE:
            raise ValueError(f"unknown ranking rule {rule!r}; this version reads {FITTED_RULE!r}")
        missing = [key for key in ("taxa", "weights", "bias") if key not in data]
        if missing:
            raise ValueError(f"ranking calibration lacks {missing}")
        calibration = cls(
            taxa=tuple(str(t) for t in data["taxa"]),
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            top_k=int(data.get("top_k", 3)),
            fitted=dict(data.get("fitted") or {}),
        )
        names = data.get("features")
        if names is not None and list(names) != calibration.feature_names():
            msg = (
                f"ranking calibration features {list(names)} are not the ones this version "
                f"computes ({calibration.feature_names()}); refit it"
            )
            raise ValueError(msg)
        return calibration


__all__ = [
    "FITTED_RULE",
    "NUMERIC_FEATURES",
    "RULE",
    "RankingCalibration",
    "ranking_features",
    "wrongness",
    "wrongness_of",
]
