"""What the plankton OOD score costs per batch, part by part (issue 26).

The outlier-exposure scorer (:mod:`seawatch.contracts.ood_scorer`) runs on the inference
thread after the classifier graph, on every batch of objects. This times, per batch of 64
prepared crops (development draw, seed 7_100_901), with one OpenCV, one BLAS and one ONNX
Runtime thread as the daemon runs them: the graph, then each part of the score (image
statistics, the kNN product against the feature bank, the statistics bank distance, the
stage-3 kNN product where the scorer has one, the network) and the whole score. CPU time of
the calling thread (``time.thread_time``), so other jobs on the VM inflate it less than
wall time; the minimum and the median of ``--repeats`` calls.
``benchmarks/results/ood_cost.json`` holds two runs of issue 24's code and two of issue
26's, interleaved; ``ood_cost_stage3.json`` the scorer with and without the stage-3 inputs.

    python benchmarks/ood_cost.py [--model models/plankton] [--repeats 50] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from seawatch.config import resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.image_stats import image_stats
from seawatch.contracts.ood import load_ood
from seawatch.contracts.ood_scorer import OodScorer, stats_distance
from seawatch.contracts.preprocess import batch_tensor
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.plankton.synthetic_sets import synthetic_split

SEED, BATCH = 7_100_901, 64


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Thread CPU milliseconds of ``fn``: min and median of ``repeats`` calls (one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return {"min": round(min(times) * 1000, 3), "median": round(float(np.median(times)) * 1000, 3)}


def parts(scorer: OodScorer, backend, x: np.ndarray, repeats: int) -> dict[str, dict]:
    """The graph and each part of the score on one batch ``x`` (N x 1 x S x S)."""
    outputs = backend.run_outputs(x)
    probs, features = outputs[0], np.asarray(outputs[1], np.float32)
    stage3 = outputs[2] if scorer.stage3 is not None else None
    crops = np.clip(x[:, 0], 0, 255).astype(np.uint8)
    z = (image_stats(crops) - scorer.stats_mean) / scorer.stats_std
    rows = (scorer.inputs(features, probs, crops, stage3) - scorer.in_mean) / scorer.in_scale
    extra = {}
    if scorer.stage3 is not None:
        extra["stage3_knn"] = timed(lambda: scorer.stage3.scores(stage3), repeats)
    return (
        {
            "graph": timed(lambda: backend.run_outputs(x), repeats),
            "image_stats": timed(lambda: image_stats(crops), repeats),
            "feature_knn": timed(lambda: scorer.knn.scores(features), repeats),
            "stats_knn": timed(
                lambda: stats_distance(z, scorer.stats_bank, squared=scorer.stats_squared), repeats
            ),
        }
        | extra
        | {
            "network": timed(lambda: scorer.network(rows), repeats),
            "score_total": timed(lambda: scorer.scores(features, probs, x, stage3), repeats),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/plankton"))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model = resolve_model_dir(args.model)
    card = load_card(model)
    scorer = load_ood(model, card.ood)
    if not isinstance(scorer, OodScorer):
        raise SystemExit(f"{model} has no outlier-exposure scorer (card field ood)")
    cv2.setNumThreads(1)
    backend = OnnxRuntimeBackend(model / ONNX_FILE, threads=1)
    split, _ = synthetic_split("test", 10, seed=SEED, size=card.input.size)
    x = batch_tensor(list(split.images[:BATCH]))
    with threadpool_limits(1, user_api="blas"):
        result = parts(scorer, backend, x, args.repeats)
    for name, ms in result.items():
        print(f"{name:12s} min {ms['min']:8.3f} ms  median {ms['median']:8.3f} ms  per {BATCH}")
    if args.out is not None:
        report = {
            "model": card.release,
            "bank_rows": int(scorer.knn.bank.shape[0]),
            "stats_bank_rows": int(scorer.stats_bank.shape[0]),
            "stage3_bank_rows": 0 if scorer.stage3 is None else int(scorer.stage3.bank.shape[0]),
            "network_inputs": int(scorer.w1.shape[0]),
            "batch": BATCH,
            "seed": SEED,
            "ms_per_batch": result,
            "clock": "thread CPU time; 1 OpenCV, 1 BLAS, 1 ONNX Runtime thread",
            "machine": platform.platform(),
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
