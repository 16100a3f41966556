"""Class balance for the heavy imbalance of real plankton data: sampling or loss weights.

Real catches are dominated by a few taxa (detritus, marine snow, copepods) while many taxa
are rare. Two remedies, chosen with ``--balance``:

- ``sampler``: each epoch draws ``len(labels)`` indices with replacement, each sample with
  probability proportional to ``1 / count(its class)``, so every class is seen about equally
  often (rare ones under more augmentation, common ones subsampled);
- ``loss``: cross-entropy weighted by the "effective number of samples",
  ``(1 - beta) / (1 - beta ** n_c)`` (Cui et al., 2019), normalised to mean 1.

numpy only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Balance = Literal["sampler", "loss", "none"]
BALANCE_CHOICES: tuple[str, ...] = ("sampler", "loss", "none")


def balanced_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of indices drawn so that every present class is equally likely."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())


def effective_number_weights(labels: np.ndarray, n_classes: int, beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights ``(1 - beta) / (1 - beta ** n_c)``, mean 1 over present classes."""
    if not 0.0 <= beta < 1.0:
        msg = f"beta must be in [0, 1), got {beta}"
        raise ValueError(msg)
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
    weights[present] /= weights[present].mean()
    return weights


__all__ = ["BALANCE_CHOICES", "Balance", "balanced_indices", "effective_number_weights"]
