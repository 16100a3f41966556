"""The kNN cosine distance of penultimate features to a bank of training features (Sun et
al., 2022): the first out-of-distribution score (:mod:`.ood` says why this one) and an input
of the outlier-exposure scorer (:mod:`.ood_scorer`). numpy only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); a zero row stays zero."""
    x = np.asarray(features, np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class OodDetector:
    """kNN cosine distance of penultimate features to a bank of training features."""

    needs_inputs = False  # the features alone (the scorer of .ood_scorer needs more)

    def __init__(self, bank: np.ndarray, *, k: int, threshold: float) -> None:
        if bank.ndim != 2 or len(bank) < k or k < 1:
            msg = f"an OOD bank must be N x D with N >= k >= 1; got {bank.shape} and k={k}"
            raise ValueError(msg)
        self.bank = normalise(bank)  # float32 for the product; stored as float16
        self.bank_t = np.ascontiguousarray(self.bank.T)  # (dim, n): the product's layout
        self.k = int(k)
        self.threshold = float(threshold)

    @property
    def dim(self) -> int:
        """The feature dimension the bank expects."""
        return int(self.bank.shape[1])

    def scores(
        self, features: np.ndarray, probs: object = None, images: object = None, chunk: int = 512
    ) -> np.ndarray:
        """``1 - cos`` to the k-th nearest bank row, per object (N,), float32; higher =
        less like anything in training (0: identical direction, up to 2). ``probs`` and
        ``images`` are not read (the scorers share one signature)."""
        x = normalise(features)
        if x.ndim != 2 or x.shape[1] != self.dim:
            msg = f"features of shape {x.shape} do not fit an OOD bank of dimension {self.dim}"
            raise ValueError(msg)
        out = np.empty(len(x), np.float32)
        for i in range(0, len(x), chunk):
            sims = x[i : i + chunk] @ self.bank_t
            if self.k == 1:  # the nearest: a max, not a partition (3x less of the loop)
                kth = sims.max(axis=1)
            else:
                kth = np.partition(sims, -self.k, axis=1)[:, -self.k]
            out[i : i + chunk] = 1.0 - kth
        return out

    def flags(self, features: np.ndarray) -> np.ndarray:
        """True where the score is over the threshold."""
        return self.scores(features) > self.threshold

    def save(self, path: Path) -> str:
        """Write the bank (float16) to ``path``; return the file's SHA-256 for the card."""
        path = Path(path)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                bank=self.bank.astype(np.float16),
                k=np.int64(self.k),
                threshold=np.float64(self.threshold),
            )
        return _sha256(path)


__all__ = ["OodDetector", "normalise"]
