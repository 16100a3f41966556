"""The candidate "most likely wrong" scores of ``benchmarks/review_queue.py`` and their fits.

Each candidate is computed from what the store keeps per object (``confidence``, the rounded
``top_k``, the taxon and whether the frame was a full one): the card's fitted ranking
calibration (:data:`CHOSEN`), least confidence, margin, entropy over the top-k, a
temperature-recalibrated top-1 probability (:func:`fit_power`), the calibration's logistic
form with linear ``1 - p1`` and ``p1 - p2`` terms (:func:`linear_features`) and the earlier
class-aware reference (:func:`reference_features`, :func:`fit_reference`). Higher = more
likely wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seawatch.contracts.ranking import ranking_features
from seawatch.models.plankton.ranking_fit import Stored as Answers

CHOSEN = "fitted (card)"


def fit_power(probs: np.ndarray, labels: np.ndarray) -> float:
    """The exponent ``a`` (= old / new temperature) minimising the NLL of softmax(a log p),
    by golden-section search on log a in [-3, 3]."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_a: float) -> float:
        z = logp * math.exp(log_a)
        z -= z.max(axis=1, keepdims=True)
        logq = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logq[np.arange(len(labels)), labels].mean())

    lo, hi, ratio = -3.0, 3.0, (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (lo, b) if nll(a) < nll(b) else (a, hi)
    return math.exp((lo + hi) / 2)


def _with_rest(top_k: np.ndarray) -> np.ndarray:
    """Top-k probabilities plus one column for the rest of the mass (>= 0)."""
    rest = np.clip(1.0 - top_k.sum(axis=1, keepdims=True), 0.0, None)
    return np.concatenate([top_k, rest], axis=1)


def reference_features(ans: Answers, classes: list[str]) -> np.ndarray:
    """Stored-field features of the class-aware reference: log(1 - p1), log(p1 - p2),
    log p2, log p3 and the one-hot top-1 taxon."""
    eps = 1e-6
    k = ans.top_k
    logs = [np.log(1 - ans.confidence + eps), np.log(ans.confidence - k[:, 1] + eps)]
    logs += [np.log(k[:, j] + eps) for j in range(1, k.shape[1])]
    onehot = np.array([[c == t for c in classes] for t in ans.first], np.float64)
    return np.concatenate([np.stack(logs, axis=1), onehot], axis=1)


def fit_reference(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """The earlier reference's fit: L2 (bias included) logistic regression by Newton steps;
    weights with the bias last."""
    x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    w = np.zeros(x1.shape[1])
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-x1 @ w))
        grad = x1.T @ (p - y) + l2 * w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def linear_features(ans: Answers, full: np.ndarray, taxa: tuple[str, ...]) -> np.ndarray:
    """The calibration's features with ``1 - p1`` and ``p1 - p2`` instead of their logs."""
    x = ranking_features(ans.confidence, ans.top_k, ans.taxon, full, taxa)
    x[:, 0], x[:, 1] = 1.0 - ans.confidence, ans.confidence - ans.top_k[:, 1]
    return x


@dataclass
class Fits:
    """Everything fitted on the validation cruise, and the card's calibration."""

    power: float
    reference: np.ndarray
    card: object  # RankingCalibration
    linear: tuple[np.ndarray, float]
    taxa: tuple[str, ...]


def candidates(ans: Answers, full: np.ndarray, fits: Fits, classes: list[str]):
    """Every candidate score (higher = more likely wrong) from the stored fields."""
    confidence, top_k = ans.confidence, ans.top_k
    p = _with_rest(top_k)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    # temperature: q_i ∝ p_i^a over the top-k, the rest spread evenly over the other classes
    power = fits.power
    others = max(1, len(classes) - top_k.shape[1])
    mass = (top_k**power).sum(axis=1) + others * (p[:, -1] / others) ** power
    x1 = np.concatenate([reference_features(ans, classes), np.ones((len(top_k), 1))], axis=1)
    weights, bias = fits.linear
    return {
        CHOSEN: fits.card.scores(confidence, top_k, ans.taxon, full),
        "least_confidence": 1.0 - confidence,
        "margin": 1.0 - (confidence - top_k[:, 1]),
        "entropy": entropy,
        "temperature": 1.0 - confidence**power / mass,
        "fitted, linear 1-p1 and p1-p2": linear_features(ans, full, fits.taxa) @ weights + bias,
        "class_aware (earlier reference)": x1 @ fits.reference,
    }


__all__ = [
    "CHOSEN",
    "Fits",
    "candidates",
    "fit_power",
    "fit_reference",
    "linear_features",
    "reference_features",
]
