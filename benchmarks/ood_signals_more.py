"""More cheap signals for the served plankton OOD scorer? (issue 24, development draws only)

The served scorer (:mod:`seawatch.contracts.ood_scorer`) reads the penultimate features,
the softmax, the image statistics and the pooled third stage (graph output ``stage3``).
This refits it (the same drawn outliers, five MLPs, softmax bar and threshold at 4 % of the
validation split: :func:`ood_signals.fit_and_rate`) with one more cheap signal at a time:

- ``energy``  the free energy ``logsumexp`` of the logits and the largest logit (Liu et al.
              2020), from the features and the head's weights: two numbers, no graph change;
- ``stage2``  the second residual stage's map pooled to each channel's mean and standard
              deviation (96 numbers) and their kNN cosine distance to the training split's
              (a fourth graph output and a 8,982 x 96 bank if kept);
- ``maha3``   the Mahalanobis distance of the stage-3 numbers to the nearest training class
              (class means, one shared covariance, Lee et al. 2018): one number.

Everything at development seeds (the fit's own sets, and the benchmark's four sets at
``--dev-seeds``, :func:`benchmarks.ood.draw_sets`); a reserved 7_9xx_xxx seed is refused.
Writes ``benchmarks/results/ood_signals_more_dev.json``.

    python benchmarks/ood_signals_more.py [--dev-seeds 7150001 7150002 7150003]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.ood import load_ood
from seawatch.models.plankton.network import stage_stats
from seawatch.models.plankton.ood_fit import graph_arrays
from seawatch.models.plankton.ood_oe_fit import _draws
from seawatch.models.plankton.reexport import rebuild_network
from seawatch.models.plankton.synthetic_sets import synthetic_split
from seawatch.models.training import training_progress

sys.path.insert(0, str(Path(__file__).parent))
from ood import draw_sets
from ood_signals import fit_and_rate, knn_distance

RESULTS = Path(__file__).parent / "results"


def stage2(net, images: np.ndarray) -> np.ndarray:
    """Per-channel mean and std of the second residual stage's map (N x 2C)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = torch.from_numpy(images[i : i + 256, None].astype(np.float32))
            out.append(stage_stats(net.stages[:2](net.stem((x / 255.0 - net.mean) / net.std))))
    return torch.cat(out).numpy()


def energy(net, features: np.ndarray) -> np.ndarray:
    """Free energy (logsumexp of the logits) and the largest logit (N x 2)."""
    weight = net.head[2].weight.detach().numpy()
    logits = features @ weight.T + net.head[2].bias.detach().numpy()
    top = logits.max(1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(1))
    return np.c_[lse, top]


def mahalanobis(train: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Log of the smallest class Mahalanobis distance (shared, shrunk covariance)."""
    classes = np.unique(labels)
    means = np.stack([train[labels == c].mean(0) for c in classes])
    centred = train - means[np.searchsorted(classes, labels)]
    cov = np.cov(centred, rowvar=False)
    cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))
    precision = np.linalg.inv(cov)
    d = [np.einsum("ij,jk,ik->i", rows - m, precision, rows - m) for m in means]
    return np.log(np.min(d, axis=0) + 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/plankton"))
    parser.add_argument(
        "--dev-seeds", type=int, nargs="+", default=[7_150_001, 7_150_002, 7_150_003]
    )
    parser.add_argument("--per-taxon", type=int, default=100)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--signals", nargs="*", default=["energy", "stage2", "maha3"])
    parser.add_argument("--out", type=Path, default=RESULTS / "ood_signals_more_dev.json")
    args = parser.parse_args()
    if any(7_900_000 <= s <= 7_999_999 for s in args.dev_seeds):
        raise SystemExit("--dev-seeds: 7,900,000-7,999,999 are reserved; use 7_1xx_xxx")
    torch.set_num_threads(2)
    started = time.perf_counter()
    card = load_card(args.model)
    scorer = load_ood(args.model, card.ood)
    if getattr(scorer, "stage3", None) is None:
        raise SystemExit(f"{args.model}: the served scorer has no stage-3 inputs; refit first")
    with training_progress() as progress:
        images = _draws(card, progress)
    for seed in args.dev_seeds:
        for name, (x, _) in draw_sets(seed, args.per_taxon, card.input.size).items():
            images[f"{seed}/{name}"] = x
    names = [n for n in images if n != "train"]
    outs = ("probs", "features", "stage3")
    graph = {n: graph_arrays(args.model / ONNX_FILE, x, outs) for n, x in images.items()}
    base = {
        n: scorer.inputs(graph[n]["features"], graph[n]["probs"], images[n], graph[n]["stage3"])
        for n in names
    }
    top = {n: graph[n]["probs"].max(1) for n in names}
    net = rebuild_network(args.model)
    signals = {}
    if "energy" in args.signals:
        signals["energy"] = {n: energy(net, graph[n]["features"]) for n in names}
    if "stage2" in args.signals:
        bank = stage2(net, images["train"])
        s2 = {n: stage2(net, images[n]) for n in names}
        signals["stage2"] = {
            n: np.c_[np.log(np.maximum(knn_distance(bank, s2[n]), 0) + 1e-3), s2[n]] for n in names
        }
    if "maha3" in args.signals:
        data = card.training.data
        train, _ = synthetic_split(
            "train",
            int(data["train_per_class_mean"]),
            seed=card.training.seed,
            size=card.input.size,
            segmented_share=float(data.get("segmented_share", 0.4)),
            imbalance=float(data.get("train_imbalance", 1.0)),
        )
        assert np.array_equal(train.images, images["train"])
        s3 = graph["train"]["stage3"]
        signals["maha3"] = {
            n: mahalanobis(s3, np.asarray(train.labels), graph[n]["stage3"])[:, None] for n in names
        }
    softmax = float(card.thresholds.get("unknown_confidence", 0.0))
    results = {"served inputs (refit)": fit_and_rate(base, top, softmax, args.members)}
    for name, signal in signals.items():
        rows = {n: np.concatenate([base[n], signal[n]], 1) for n in names}
        results[f"served + {name}"] = fit_and_rate(rows, top, softmax, args.members)
        print(name, {k: v for k, v in results[f"served + {name}"].items() if "/" in k}, flush=True)
    for label, r in results.items():
        print(f"{label:24s}", "  ".join(f"{n} {v}" for n, v in r.items()))
    report = {
        "model": card.release,
        "dev_seeds": args.dev_seeds,
        "target_validation_flagged": 0.04,
        "settings": vars(args) | {"model": str(args.model), "out": str(args.out)},
        "unknown_percent": results,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": platform.platform(),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
