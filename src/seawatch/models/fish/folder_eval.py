"""Re-ID quality on a user's held-out individuals (numpy; any ``embed`` function).

The same protocol as the synthetic evaluation (:mod:`seawatch.models.fish.evaluate`), on
the groups of :func:`~seawatch.models.fish.folders.split_individuals`, none of them trained on:

- known: the first ``enrol`` views of each individual enrol it in a gallery, its other views
  are the queries: rank-1 / rank-5 over individuals and image-level mAP;
- calibration: their views' best gallery scores (impostors) set the threshold for the target
  false-match rate;
- new: never enrolled; open-set AUROC of known queries against new ones (best gallery score)
  and the share of new fish falsely matched at the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seawatch.models.fish import metrics as m
from seawatch.models.fish.evaluate import Embed
from seawatch.models.fish.folders import FishFolders
from seawatch.models.fish.gallery import Gallery

MAX_ENROL = 3  # views enrolled per known individual (fewer when it has few)


def held_out_metrics(
    embed: Embed, folders: FishFolders, groups: dict[str, list[int]], *, far: float
) -> dict[str, Any]:
    """Rank-1/5, mAP, open-set AUROC and the calibrated threshold on the held-out groups."""
    emb = {g: _embed(embed, *folders.of(groups[g])) for g in ("known", "calibration", "new")}
    (k_emb, k_labels) = emb["known"]
    enrol = _enrol_mask(k_labels)
    gallery = Gallery()
    individuals = sorted(groups["known"])
    for index in individuals:
        gallery.enrol(folders.names[index], k_emb[enrol & (k_labels == index)])
    column = {index: i for i, index in enumerate(individuals)}
    queries, q_labels = k_emb[~enrol], k_labels[~enrol]
    scores = gallery.scores(queries)
    truth = np.array([column[y] for y in q_labels])
    impostor = gallery.scores(emb["calibration"][0]).max(1)
    threshold = m.threshold_for_false_match_rate(impostor, far)
    best_known, best_new = scores.max(1), gallery.scores(emb["new"][0]).max(1)
    correct = scores.argmax(1) == truth
    accepted = best_known >= threshold
    return {
        "individuals": {g: len(groups[g]) for g in ("known", "calibration", "new")},
        "queries": len(q_labels),
        "top1": round(m.top_k(scores, truth, 1), 4),
        "top5": round(m.top_k(scores, truth, 5), 4),
        "mAP": round(
            m.mean_average_precision(queries @ k_emb[enrol].T, q_labels, k_labels[enrol]), 4
        ),
        "new_vs_known_auroc": round(m.auroc(best_known, best_new), 4),
        "match_similarity": threshold,
        "target_false_match_rate": far,
        "new_false_match_rate": round(float((best_new >= threshold).mean()), 4),
        "known_correct_match_rate": round(float((accepted & correct).mean()), 4),
    }


def _enrol_mask(labels: np.ndarray) -> np.ndarray:
    """The first min(MAX_ENROL, views // 2) views of each individual (at least one)."""
    mask = np.zeros(len(labels), bool)
    for index in np.unique(labels):
        where = np.flatnonzero(labels == index)
        mask[where[: max(1, min(MAX_ENROL, len(where) // 2))]] = True
    return mask


def _embed(embed: Embed, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = [embed(images[i : i + 128].astype(np.float32)) for i in range(0, len(images), 128)]
    return np.concatenate(out).astype(np.float32), labels


def improvement(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """After minus before for the headline metrics (positive: fine-tuning helped)."""
    keys = ("top1", "top5", "mAP", "new_vs_known_auroc")
    return {k: round(after[k] - before[k], 4) for k in keys}


__all__ = ["MAX_ENROL", "held_out_metrics", "improvement"]
