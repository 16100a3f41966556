"""Re-identification metrics in numpy: CMC / top-k, mAP, AUROC, false-match threshold.

Conventions. ``scores`` is a queries x individuals matrix (the gallery's per-individual
score); ties count against the query (the true individual's rank is one plus the number of
*other* individuals scoring at least as high). mAP is the image-level retrieval mAP used in
person/animal re-ID (Market-1501 style): each query ranks every enrolled *image*, and every
image of its own individual is relevant.
"""

from __future__ import annotations

import math

import numpy as np


def true_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of each query's true individual (column ``truth[i]``) in its score row."""
    scores = np.asarray(scores, np.float64)
    truth = np.asarray(truth, np.int64)
    if scores.ndim != 2 or len(scores) != len(truth):
        msg = f"scores must be Q x G with one truth per query, got {scores.shape}, {truth.shape}"
        raise ValueError(msg)
    own = scores[np.arange(len(scores)), truth][:, None]
    return (scores >= own).sum(1)  # the true column itself counts once


def cmc(scores: np.ndarray, truth: np.ndarray, max_rank: int = 20) -> np.ndarray:
    """Cumulative match characteristic: share of queries whose individual is in the top k."""
    ranks = true_ranks(scores, truth)
    ks = np.arange(1, max_rank + 1)
    return (ranks[None, :] <= ks[:, None]).mean(1) if len(ranks) else np.zeros(max_rank)


def top_k(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of queries whose true individual ranks within the first ``k``."""
    return float((true_ranks(scores, truth) <= k).mean())


def average_precision(similarities: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one ranking: mean precision at the position of each relevant item."""
    relevant = np.asarray(relevant, bool)
    if not relevant.any():
        return 0.0
    order = np.argsort(-np.asarray(similarities), kind="stable")
    hits = relevant[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def mean_average_precision(
    similarities: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> float:
    """Mean AP over queries; ``similarities`` is queries x gallery images."""
    gallery_labels = np.asarray(gallery_labels)
    aps = [
        average_precision(row, gallery_labels == label)
        for row, label in zip(similarities, query_labels, strict=True)
    ]
    return float(np.mean(aps)) if aps else 0.0


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: P(positive score > negative score), ties count one half."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not len(pos) or not len(neg):
        msg = f"AUROC needs both classes, got {len(pos)} positive and {len(neg)} negative"
        raise ValueError(msg)
    values = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties share their mean
    ranks = average_rank[inverse]
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def threshold_for_false_match_rate(impostor: np.ndarray, rate: float) -> float:
    """The lowest threshold (4 decimals) that at most ``rate`` of impostor scores reach.

    An impostor score is an unknown fish's best score against the gallery; a score at or
    above the threshold is a false match.
    """
    if not 0.0 <= rate < 1.0:
        msg = f"false-match rate must be in [0, 1), got {rate}"
        raise ValueError(msg)
    scores = np.sort(np.asarray(impostor, np.float64))[::-1]
    if not len(scores):
        msg = "calibrating a threshold needs impostor scores, got none"
        raise ValueError(msg)
    allowed = math.floor(rate * len(scores) + 1e-9)
    if allowed >= len(scores):
        return round(math.floor(scores[-1] * 1e4) / 1e4, 4)
    return round(math.floor(scores[allowed] * 1e4) / 1e4 + 1e-4, 4)


__all__ = [
    "auroc",
    "average_precision",
    "cmc",
    "mean_average_precision",
    "threshold_for_false_match_rate",
    "top_k",
    "true_ranks",
]
