"""The plankton head's answers: class probabilities and OOD scores -> one :class:`Prediction`
per object (taxon or ``unknown``, confidence, top-k, OOD score).

numpy only; :class:`~seawatch.models.plankton.head.PlanktonClassifier` calls
:func:`predictions` with its card's classes and thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from seawatch.contracts.records import UNKNOWN


@dataclass(frozen=True, slots=True)
class Prediction:
    """The classifier's answer for one object."""

    taxon: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    ood: float | None = None  # the OOD score; None without a detector
    ood_flagged: bool = False  # unknown because the OOD score is over its threshold


class PlanktonOutputs(NamedTuple):
    """What :meth:`PlanktonClassifier.infer` returns: probabilities (N x C) and the OOD
    score per object (N,), zeros where the model has no detector (so a swap between
    models with and without one compares equal shapes)."""

    probs: np.ndarray
    ood: np.ndarray


def predictions(
    probs: np.ndarray,
    scores: np.ndarray | None,
    classes: np.ndarray,
    top_k: int,
    unknown_below: float,
    limit: float,
) -> list[Prediction]:
    """Probabilities (N x C) and OOD scores (N,; None: no detector) -> taxon, confidence,
    top-k and OOD score per row: ``unknown`` when the best probability is under
    ``unknown_below`` or the OOD score is over ``limit``."""
    order = np.argsort(-probs, axis=1)[:, :top_k]
    best = np.take_along_axis(probs, order, axis=1)
    names = classes[order]
    flagged = scores > limit if scores is not None else np.zeros(len(probs), bool)
    return [
        Prediction(
            taxon=str(names[i, 0]) if best[i, 0] >= unknown_below and not flagged[i] else UNKNOWN,
            confidence=float(best[i, 0]),
            top_k=tuple(zip(names[i].tolist(), best[i].round(4).tolist(), strict=True)),
            ood=None if scores is None else round(float(scores[i]), 5),
            ood_flagged=bool(flagged[i]) and best[i, 0] >= unknown_below,
        )
        for i in range(len(probs))
    ]


__all__ = ["PlanktonOutputs", "Prediction", "predictions"]
