"""Experiment (issue 24, item 7): do self-supervised features tell new organisms apart better
than the classifier's?

The served OOD score reads the classifier's penultimate and third-stage features, which are
trained to ignore whatever does not separate the ten taxa, and so partly what makes a new
organism new (held-out taxa: 65-67 % unknown at 4-5 % of in-distribution objects). SimCLR
features (Chen et al. 2020; SSD, Sehwag et al. 2021, for OOD) are trained to keep what tells
one crop from another. This pretrains SimCLR on unlabelled *in-distribution* crops (the
crops a daemon stores), starting from the committed backbone, and compares the kNN cosine
distance (k-th neighbour, Sun et al. 2022) to a bank of in-distribution crops in three
feature spaces: the classifier's, SimCLR's, and both (z-scored on an in-distribution
validation draw, summed); and the served score (the daemon head's outlier-exposure logit)
alone and plus the SimCLR distance (each z-scored, summed). For each: AUROC against
in-distribution, and the share flagged at the threshold that flags 4 % of the validation
draw (the served score's operating point). Development seeds only (7_100_6xx, the OOD
benchmark's dev draw 7_150_001); no reserved draw, nothing served.

    python experiments/plankton/ssl_knn_ood.py [--epochs 15] [--per-class 480] [--k 10]
        [--save DIR]   # the SimCLR backbone (backbone.pt + backbone.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from ood import auroc, draw_sets
from seawatch.config import resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.ood import load_ood
from seawatch.contracts.preprocess import batch_tensor
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.plankton.backbone import BACKBONE_FILE, save_backbone
from seawatch.models.plankton.head import PlanktonClassifier
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.reexport import rebuild_network
from seawatch.models.plankton.ssl import SslParams, pretrain_simclr
from seawatch.models.plankton.synthetic_sets import synthetic_split

POOL_SEED, VALIDATION_SEED, TEST_SEED = 7_100_600, 7_100_601, 7_150_001
RESULT = Path(__file__).parent / "results" / "ssl_knn_ood.json"


def features(net: PlanktonNet, images: np.ndarray) -> np.ndarray:
    """L2-normalised penultimate features of prepared gray crops."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = torch.from_numpy(images[i : i + 256, None]).float()
            out.append(torch.nn.functional.normalize(net.features(x), dim=1).numpy())
    return np.concatenate(out)


def knn_distance(bank: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """1 - the cosine similarity of each query's k-th nearest bank row."""
    sims = query @ bank.T
    return 1.0 - np.partition(sims, -k, axis=1)[:, -k]


def served_scores(model: Path, sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The daemon head's OOD score (the outlier-exposure logit) of every crop of each set."""
    card = load_card(model)
    backend = OnnxRuntimeBackend(model / ONNX_FILE, threads=1)
    head = PlanktonClassifier(backend, card, max_batch=256, top_k=3, ood=load_ood(model, card.ood))
    return {
        name: np.asarray(head.infer(batch_tensor(list(images))).ood, np.float64)
        for name, images in sets.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--per-class", type=int, default=480)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--save", type=Path, default=None, help="write the SimCLR backbone")
    args = parser.parse_args()
    started = time.perf_counter()
    model = resolve_model_dir(Path("models/plankton"))
    pool = synthetic_split("train", args.per_class, seed=POOL_SEED, size=64)[0].images
    validation = synthetic_split("validation", 100, seed=VALIDATION_SEED, size=64)[0].images
    sets = {name: images for name, (images, _) in draw_sets(TEST_SEED, 100, 64).items()}
    print(f"pool {len(pool)} crops, validation {len(validation)}; SimCLR {args.epochs} epochs")
    ssl, history = pretrain_simclr(
        pool,
        start=model / BACKBONE_FILE,
        params=SslParams(epochs=args.epochs),
        on_epoch=lambda e, loss, s: print(f"  epoch {e} loss {loss:.3f} ({s:.0f} s)", flush=True),
    )
    if args.save is not None:
        save_backbone(
            ssl, args.save, {"method": "SimCLR on in-distribution crops", "loss": history}
        )
    spaces = {"classifier": rebuild_network(model), "simclr": ssl}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for name, net in spaces.items():
        bank = features(net, pool)
        scores[name] = {
            s: knn_distance(bank, features(net, x), args.k)
            for s, x in {"validation": validation, **sets}.items()
        }
    z = {  # both spaces: each distance z-scored on the in-distribution validation draw
        name: (np.mean(per["validation"]), np.std(per["validation"]))
        for name, per in scores.items()
    }
    scores["both"] = {
        s: sum((scores[n][s] - z[n][0]) / z[n][1] for n in spaces) for s in scores["classifier"]
    }
    served = served_scores(model, {"validation": validation, **sets})
    scores["served"] = served
    mean, std = np.mean(served["validation"]), np.std(served["validation"])
    ssl_mean, ssl_std = z["simclr"]
    scores["served+simclr"] = {
        s: (served[s] - mean) / std + (scores["simclr"][s] - ssl_mean) / ssl_std for s in served
    }
    report: dict = {}
    for name, per in scores.items():
        threshold = float(np.quantile(per["validation"], 0.96))  # flags 4 % of validation
        report[name] = {
            s: {
                "flagged": round(float((per[s] > threshold).mean()), 4),
                "auroc_vs_in_distribution": round(auroc(per["in_distribution"], per[s]), 4),
            }
            for s in sets
        }
        print(name, {s: v["flagged"] for s, v in report[name].items()})
    record = {
        "command": f"python experiments/plankton/ssl_knn_ood.py --epochs {args.epochs} "
        f"--per-class {args.per_class} --k {args.k}",
        "seeds": {"pool": POOL_SEED, "validation": VALIDATION_SEED, "test_sets": TEST_SEED},
        "pool": len(pool),
        "simclr_loss_per_epoch": history,
        "operating_point": "threshold flags 4 % of the in-distribution validation draw",
        "results": report,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
