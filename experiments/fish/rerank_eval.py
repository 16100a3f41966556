"""Re-ranking on the card's evaluation split (issue 28, eighth round): alpha query expansion
(:mod:`seawatch.models.fish.rerank`) and k-reciprocal re-ranking (Zhong et al. 2017, the
gallery side precomputed), each with its threshold calibrated again on the calibration fish
at the card's false-match rate. Closed set: top-1 and image-level mAP of the 1,008 known
queries against the 168 enrolled fish; open set at the recalibrated threshold: known
sightings declared new / matched wrongly, and the unseen-unknown strangers' false-match rate
and AUROC (never used for the threshold).

    python experiments/fish/rerank_eval.py --cache /tmp/eval_emb.npz --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from gallery_size_fmr import MODEL, embedded_sets  # noqa: E402

from seawatch.models.fish import metrics as m  # noqa: E402
from seawatch.models.fish.rerank import QueryExpansion  # noqa: E402


def per_individual(sims: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Queries x views similarities -> queries x individuals (max over each one's views)."""
    out = np.full((len(sims), n), -np.inf)
    for j in range(n):
        out[:, j] = sims[:, owners == j].max(1)
    return out


def k_reciprocal(queries: np.ndarray, views: np.ndarray, k1: int, lam: float) -> np.ndarray:
    """Zhong et al.'s re-ranked similarity (1 - final distance) of each query to each view:
    Jaccard distance of k-reciprocal neighbour sets (gallery side from the views alone, as
    an enrolment would precompute), mixed with the original distance by ``lam``."""
    v = len(views)
    gg = views @ views.T
    order = np.argsort(-gg, axis=1)[:, : k1 + 1]
    near = [set(row.tolist()) for row in order]
    recip = [{j for j in near[i] if i in near[j]} for i in range(v)]
    enc = np.zeros((v, v))
    for i in range(v):
        idx = np.array(sorted(recip[i]))
        w = np.exp(gg[i, idx] - 1.0)  # Gaussian-like weights on cosine distance
        enc[i, idx] = w / w.sum()
    qg = queries @ views.T
    out = np.zeros_like(qg)
    for q in range(len(queries)):
        top = np.argsort(-qg[q])[:k1]
        recip_q = [j for j in top if qg[q, j] >= gg[j, order[j, -1]]]  # q within j's k1
        vec = np.zeros(v)
        if recip_q:
            idx = np.array(recip_q)
            w = np.exp(qg[q, idx] - 1.0)
            vec[idx] = w / w.sum()
        jaccard = 1 - np.minimum(vec[None], enc).sum(1) / np.maximum(vec[None], enc).sum(1)
        dist = 1 - qg[q]
        out[q] = 1 - ((1 - lam) * jaccard + lam * dist)
    return out


def evaluate(name: str, score_views, sets: dict[str, np.ndarray], far: float) -> dict:
    """One variant: ``score_views(queries)`` -> queries x enrolled views similarities."""
    labels = sets["enrol_labels"]
    ids = list(dict.fromkeys(labels.tolist()))
    owners = np.array([ids.index(x) for x in labels])
    n = len(ids)
    t0 = time.process_time()
    calib = per_individual(score_views(sets["calibration"]), owners, n).max(1)
    threshold = m.threshold_for_false_match_rate(calib, far)
    queries = np.concatenate([sets["seen"], sets["unseen_known"]])
    truth_labels = np.concatenate([sets["seen_labels"], sets["unseen_known_labels"]])
    qv = score_views(queries)
    known = per_individual(qv, owners, n)
    truth = np.array([ids.index(x) for x in truth_labels])
    best, right = known.max(1), known.argmax(1) == truth
    new = per_individual(score_views(sets["unseen_unknown"]), owners, n).max(1)
    us = (time.process_time() - t0) / (len(calib) + len(queries) + len(new)) * 1e6
    return {
        "variant": name,
        "threshold": threshold,
        "top1": round(m.top_k(known, truth, 1), 4),
        "mAP": round(m.mean_average_precision(qv, truth_labels, labels), 4),
        "known_declared_new": round(float((best < threshold).mean()), 4),
        "known_wrong": round(float(((best >= threshold) & ~right).mean()), 4),
        "known_right": round(float(((best >= threshold) & right).mean()), 4),
        "new_false_match_rate": round(float((new >= threshold).mean()), 4),
        "auroc": round(m.auroc(best, new), 4),
        "us_per_query": round(us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sets = embedded_sets(MODEL, args.cache)
    views = sets["enrol"]
    variants = {"none": lambda q: q @ views.T}
    for k in (1, 2, 3, 5):
        for alpha in (0.0, 3.0):
            qe = QueryExpansion(k, alpha)
            variants[f"qe k={k} alpha={alpha:g}"] = lambda q, qe=qe: qe.expand(q, views) @ views.T
    for k1, lam in ((6, 0.3), (10, 0.3), (6, 0.6)):
        variants[f"k-reciprocal k1={k1} lambda={lam}"] = lambda q, k1=k1, lam=lam: k_reciprocal(
            q, views, k1, lam
        )
    rows = []
    for name, score in variants.items():
        rows.append(evaluate(name, score, sets, 0.01))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "experiment": "rerank_eval",
        "command": f"python experiments/fish/rerank_eval.py --out {args.out}",
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
