"""The plankton task head: prepared crops -> taxon, confidence and top-k per object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import BackendError
from seawatch.contracts.records import UNKNOWN
from seawatch.inference.backend import Backend


@dataclass(frozen=True, slots=True)
class Prediction:
    """The classifier's answer for one object."""

    taxon: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]


class PlanktonClassifier:
    """Runs prepared crops through a backend in batches of at most ``max_batch``.

    Objects whose best probability is under the card's ``unknown_confidence`` threshold are
    called ``unknown``; their top-k still names the candidates.
    """

    def __init__(self, backend: Backend, card: ModelCard, *, max_batch: int, top_k: int) -> None:
        if max_batch < 1 or top_k < 1:
            msg = f"max_batch ({max_batch}) and top_k ({top_k}) must be at least 1"
            raise ValueError(msg)
        self.backend = backend
        self.card = card
        self.max_batch = max_batch
        self.top_k = min(top_k, len(card.class_names))
        self.classes = np.array(card.class_names)
        self.threshold = float(card.thresholds.get("unknown_confidence", 0.0))

    def predict(self, tensor: np.ndarray) -> list[Prediction]:
        """Classify a batch tensor (N×1×S×S float32 0..255) of any N."""
        return self.interpret(self.infer(tensor)) if len(tensor) else []

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """The backend alone (in chunks of ``max_batch``): class probabilities, N×C."""
        chunks = [
            self.backend.run(tensor[start : start + self.max_batch])
            for start in range(0, len(tensor), self.max_batch)
        ]
        probs = np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)))
        if probs.shape != (len(tensor), len(self.classes)):
            msg = (
                f"model returned shape {probs.shape} for {len(tensor)} inputs; expected "
                f"({len(tensor)}, {len(self.classes)}) as its card says"
            )
            raise BackendError(msg)
        return probs

    def interpret(self, probs: np.ndarray) -> list[Prediction]:
        """Probabilities (N×C, from :meth:`infer`) -> taxon, confidence and top-k per row."""
        order = np.argsort(-probs, axis=1)[:, : self.top_k]
        best = np.take_along_axis(probs, order, axis=1)
        names = self.classes[order]
        return [
            Prediction(
                taxon=str(names[i, 0]) if best[i, 0] >= self.threshold else UNKNOWN,
                confidence=float(best[i, 0]),
                top_k=tuple(zip(names[i].tolist(), best[i].round(4).tolist(), strict=True)),
            )
            for i in range(len(probs))
        ]


__all__ = ["PlanktonClassifier", "Prediction"]
