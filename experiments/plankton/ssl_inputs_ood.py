"""Experiment (issue 24, item 7): SimCLR features as inputs of the outlier-exposure scorer.

`ssl_knn_ood.py` found that a kNN distance in SimCLR features separates held-out taxa
better than one in the classifier's (AUROC 0.862 -> 0.908) but, summed by hand with the
served score, flags fewer of them at the operating point. Here the SimCLR signals go into
the scorer's own fit instead, so its network weighs them: the served inputs (features,
their kNN distance, softmax, image statistics, stage 3) plus, per arm,

- ``base``: nothing (the served inputs refitted here, for reference);
- ``knn``: log(1e-3 + the kNN cosine distance, 10th neighbour) of the SimCLR features to the
  fit's training split;
- ``knn+features``: that and the L2-normalised SimCLR features themselves.

Same sets and seeds as :func:`seawatch.models.plankton.ood_oe_fit.fit_oe` (five MLPs, the
softmax bar and threshold chosen at 4 % of validation), scored on the OOD benchmark's
development draws 7_150_001-003 (never a reserved seed). Nothing is written into the model.

    python experiments/plankton/ssl_inputs_ood.py --backbone /tmp/sslk/backbone/backbone.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parent))
from ssl_knn_ood import features, knn_distance  # noqa: E402

from ood import auroc, draw_sets  # noqa: E402
from seawatch.contracts.card import ONNX_FILE, load_card  # noqa: E402
from seawatch.models.plankton.network import PlanktonNet  # noqa: E402
from seawatch.models.plankton.ood_fit import TARGET, graph_arrays  # noqa: E402
from seawatch.models.plankton.ood_oe_fit import (  # noqa: E402
    _draws,
    _fit_network,
    banks,
    choose_floor,
)
from seawatch.models.training import training_progress  # noqa: E402

DEV_SEEDS = (7_150_001, 7_150_002, 7_150_003)
OUTSIDE = ("shapes", "corrupted")
K = 10
RESULT = Path(__file__).parent / "results" / "ssl_inputs_ood_dev.json"


def simclr_net(path: Path) -> PlanktonNet:
    """The SimCLR backbone with its own normalisation buffers (its head is unused)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = PlanktonNet(2)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("head")}, strict=False)
    return net.eval()


def logits(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The stored network's outlier logit (as :class:`OodScorer` computes it)."""
    z = (x - weights["in_mean"]) / weights["in_scale"]
    return np.maximum(z @ weights["w1"] + weights["b1"], 0.0) @ weights["w2"] + weights["b2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True, help="a SimCLR backbone.pt")
    parser.add_argument("--model", type=Path, default=ROOT / "models/plankton")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    started = time.perf_counter()
    card = load_card(args.model)
    with training_progress() as progress:
        images = _draws(card, progress)
    for seed in DEV_SEEDS:
        for name, (x, _) in draw_sets(seed, 100, card.input.size).items():
            images[f"{seed}/{name}"] = x
    graph = {
        name: graph_arrays(args.model / ONNX_FILE, x, ("probs", "features", "stage3"), None)
        for name, x in images.items()
    }
    _, blank = banks(graph["train"]["features"], images["train"], graph["train"]["stage3"])
    served = {
        name: blank.inputs(out["features"], out["probs"], images[name], out["stage3"])
        for name, out in graph.items()
        if name != "train"
    }
    net = simclr_net(args.backbone)
    simclr = {name: features(net, x) for name, x in images.items()}
    distance = {n: np.log(1e-3 + knn_distance(simclr["train"], f, K)) for n, f in simclr.items()}
    arms = {
        "base": lambda n: served[n],
        "knn": lambda n: np.c_[served[n], distance[n]],
        "knn+features": lambda n: np.c_[served[n], distance[n], simclr[n]],
    }
    softmax = float(card.thresholds.get("unknown_confidence", 0.0))
    top1 = {name: out["probs"].max(1) for name, out in graph.items()}
    report = {}
    for arm, inputs in arms.items():
        outside = np.concatenate([inputs(n) for n in OUTSIDE])
        x = np.concatenate([inputs("inside"), outside])
        y = np.r_[np.zeros(len(inputs("inside"))), np.ones(len(outside))]
        weights = _fit_network(x, y)
        scores = {n: logits(weights, inputs(n)) for n in served}
        floor, threshold, _ = choose_floor(
            softmax,
            (top1["validation"], scores["validation"]),
            (top1["calibration_taxa"], scores["calibration_taxa"]),
            TARGET,
        )

        def share(name: str, floor=floor, threshold=threshold, scores=scores) -> float:
            return round(float(((top1[name] < floor) | (scores[name] > threshold)).mean()), 4)

        report[arm] = {
            "inputs": int(x.shape[1]),
            "softmax_floor": floor,
            "validation": share("validation"),
            "calibration_taxa": share("calibration_taxa"),
            "dev": {
                seed: {
                    s: share(f"{seed}/{s}") for s in ("in_distribution", "held_out_taxa", "shifted")
                }
                | {
                    "auroc_held_out": round(
                        auroc(scores[f"{seed}/in_distribution"], scores[f"{seed}/held_out_taxa"]),
                        4,
                    )
                }
                for seed in DEV_SEEDS
            },
        }
        print(arm, json.dumps(report[arm]), flush=True)
    record = {
        "command": f"python experiments/plankton/ssl_inputs_ood.py --backbone {args.backbone}",
        "backbone": str(args.backbone),
        "k": K,
        "operating_point": f"softmax bar and score threshold flag {TARGET:.0%} of validation",
        "results": report,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
