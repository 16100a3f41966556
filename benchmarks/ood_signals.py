"""Label-free signals for the plankton OOD scorer: do they help it? (issue 24, development)

The served score (:mod:`seawatch.contracts.ood_scorer`) reads the classifier's penultimate
features, which are trained to ignore what does not separate the ten taxa. This tries three
signals that are not, each as one more input of the same outlier-exposure fit (five MLPs,
drawn organisms and corrupted optics as outliers, softmax bar and threshold chosen so that
4 % of the validation split is flagged: :mod:`seawatch.models.plankton.ood_oe_fit`), and
alone (its kNN distance as the score, the same softmax-bar choice):

- ``stage3``  the classifier's third residual stage, mean and standard deviation of each
              channel over the 8 x 8 map (192 numbers), kNN cosine distance to the training
              split's (less invariant than the pooled last stage; no extra graph run); and
              the same with the 192 numbers themselves as inputs too;
- ``ae``      a small convolutional autoencoder trained on the training crops (no labels):
              log mean and log 99th-percentile squared reconstruction error;
- ``simclr``  a SimCLR encoder (:func:`seawatch.models.plankton.ssl.nt_xent`) trained on the
              training instrument's crops, no labels, kNN cosine distance of its pooled
              features. Its views rotate, flip, scale, shift and change contrast a little,
              and add **no noise and no blur**: what the views vary, the encoder learns to
              ignore, and an instrument change is mostly noise, blur and background.

Everything is drawn at development seeds (the scorer's own fit sets; ``--dev-seeds`` for the
benchmark's four sets, :func:`benchmarks.ood.draw_sets`); never a reserved 7_9xx_xxx seed.
Writes ``benchmarks/results/ood_signals_dev.json``.

    python benchmarks/ood_signals.py [--dev-seeds 7150001 7150002] [--ae-epochs 4]
        [--simclr-epochs 2 --simclr-side 32] [--members 5]
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
import torch.nn.functional as F
from torch import nn

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.image_stats import NAMES as STAT_NAMES
from seawatch.contracts.ood_knn import OodDetector
from seawatch.contracts.ood_scorer import OodScorer
from seawatch.models.plankton.augment import AugmentParams, augment
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.ood_fit import graph_features
from seawatch.models.plankton.ood_oe_fit import (
    _draws,
    _fit_network,
    _identity,
    _stats,
    choose_floor,
)
from seawatch.models.plankton.reexport import rebuild_network
from seawatch.models.plankton.ssl import nt_xent
from seawatch.models.training import training_progress

sys.path.insert(0, str(Path(__file__).parent))
from ood import draw_sets

RESULTS = Path(__file__).parent / "results"
TARGET = 0.04
# SimCLR views: pose, size, position and a little exposure; no noise, no blur (docstring)
VIEW = AugmentParams(
    scale=(0.8, 1.25), shift=0.1, blur_probability=0.0, contrast=(0.8, 1.2), brightness=15.0
)


def knn_distance(bank: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of each row to its nearest bank row."""
    det = OodDetector(bank, k=1, threshold=0.0)
    return np.concatenate([det.scores(rows[i : i + 1024]) for i in range(0, len(rows), 1024)])


def stage3(net: PlanktonNet, images: np.ndarray) -> np.ndarray:
    """Per-channel mean and std of the third residual stage's map (N x 2C)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = torch.from_numpy(images[i : i + 256, None].astype(np.float32))
            h = net.stages[:3](net.stem((x / 255.0 - net.mean) / net.std))
            out.append(torch.cat([h.mean((2, 3)), h.std((2, 3))], 1).numpy())
    return np.concatenate(out)


def _down(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


def _up(i: int, o: int) -> nn.Module:
    return nn.Sequential(
        nn.ConvTranspose2d(i, o, 4, 2, 1), nn.BatchNorm2d(o), nn.ReLU(inplace=True)
    )


def train_autoencoder(images: np.ndarray, epochs: int, seed: int = 0):
    """A 64 -> 8 x 8 x 32 -> 64 convolutional autoencoder (MSE, Adam, random flips and
    quarter turns); returns a function of images giving log reconstruction errors (N x 2)."""
    torch.manual_seed(seed)
    ae = nn.Sequential(
        _down(1, 16), _down(16, 32), _down(32, 64), nn.Conv2d(64, 32, 1), nn.ReLU(inplace=True),
        _up(32, 32), _up(32, 16), nn.ConvTranspose2d(16, 1, 4, 2, 1),
    )  # fmt: skip
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    mean, std = float(x.mean()), float(x.std())
    optimiser = torch.optim.Adam(ae.parameters(), 2e-3)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        ae.train()
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // 128)):
            b = torch.rot90((x[idx] - mean) / std, int(rng.integers(4)), (2, 3))
            b = b.flip(3) if rng.random() < 0.5 else b
            loss = ((ae(b) - b) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    ae.eval()

    def errors(imgs: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(imgs), 512):
                b = torch.from_numpy(imgs[i : i + 512, None].astype(np.float32) / 255.0)
                r = (ae((b - mean) / std) - (b - mean) / std) ** 2
                q99 = r.flatten(1).quantile(0.99, dim=1)
                out.append(torch.stack([r.mean((1, 2, 3)), q99], 1).numpy())
        return np.log(np.concatenate(out) + 1e-4)

    return errors


def train_simclr(images: np.ndarray, epochs: int, side: int, seed: int = 0):
    """A SimCLR encoder (PlanktonNet widths 16-128, input ``side`` px) on unlabelled crops;
    returns a function of images giving its pooled features."""
    torch.manual_seed(seed)
    net = PlanktonNet(2, mean=images.mean() / 255, std=images.std() / 255, widths=(16, 32, 64, 128))
    projector = nn.Sequential(nn.Linear(128, 256), nn.ReLU(inplace=True), nn.Linear(256, 64))

    def small(imgs: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(imgs[:, None] if imgs.ndim == 3 else imgs).float()
        return x if side == x.shape[-1] else F.interpolate(x, size=(side, side), mode="area")

    def embed(x: torch.Tensor) -> torch.Tensor:
        return net.pool(net.stages(net.stem((x / 255.0 - net.mean) / net.std))).flatten(1)

    x, batch = small(images), 128
    steps = len(x) // batch
    params = [*net.parameters(), *projector.parameters()]
    optimiser = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=2e-3, total_steps=max(1, epochs * steps), pct_start=0.1
    )
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    for _ in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        for step in range(steps):
            b = x[order[step * batch : (step + 1) * batch]]
            views = torch.cat([augment(b, generator, VIEW), augment(b, generator, VIEW)])
            loss = nt_xent(F.normalize(projector(embed(views)), dim=1), 0.2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    net.eval()

    def features(imgs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate(
                [embed(small(imgs[i : i + 512])).numpy() for i in range(0, len(imgs), 512)]
            )

    return features


def fit_and_rate(inputs: dict, top: dict, softmax: float, members: int) -> dict:
    """Fit the scorer network on ``inputs`` (set name -> rows), choose the softmax bar and
    threshold at :data:`TARGET` of validation, and rate every set (% reported unknown)."""
    import seawatch.models.plankton.ood_oe_fit as oe_fit

    oe_fit.MEMBERS = members
    outside = np.concatenate([inputs["shapes"], inputs["corrupted"]])
    x = np.concatenate([inputs["inside"], outside])
    net = _fit_network(x, np.r_[np.zeros(len(inputs["inside"])), np.ones(len(outside))])

    def score(rows: np.ndarray) -> np.ndarray:
        z = (rows - net["in_mean"]) / net["in_scale"]
        return np.maximum(z @ net["w1"] + net["b1"], 0.0) @ net["w2"] + net["b2"]

    return rate({n: score(r) for n, r in inputs.items()}, top, softmax)


def rate(scores: dict, top: dict, softmax: float) -> dict:
    """Softmax bar and threshold from validation and calibration taxa; unknown % per set."""
    val, cal = "validation", "calibration_taxa"
    floor, threshold, _ = choose_floor(
        softmax, (top[val], scores[val]), (top[cal], scores[cal]), TARGET
    )
    out = {n: round(100 * float(((top[n] < floor) | (s > threshold)).mean()), 1)
           for n, s in scores.items() if n in top}  # fmt: skip
    return out | {"softmax_floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/plankton"))
    parser.add_argument("--dev-seeds", type=int, nargs="+", default=[7_150_001, 7_150_002])
    parser.add_argument("--per-taxon", type=int, default=100)
    parser.add_argument("--ae-epochs", type=int, default=4)
    parser.add_argument("--simclr-epochs", type=int, default=2)
    parser.add_argument("--simclr-side", type=int, default=32)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--subsample", type=int, default=0, help="at most N per set (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ood_signals_dev.json")
    args = parser.parse_args()
    if any(7_900_000 <= s <= 7_999_999 for s in args.dev_seeds):
        raise SystemExit("--dev-seeds: 7,900,000-7,999,999 are reserved; use 7_1xx_xxx")
    torch.set_num_threads(2)
    started = time.perf_counter()
    card = load_card(args.model)
    with training_progress() as progress:
        images = _draws(card, progress)
    for seed in args.dev_seeds:
        for name, (x, _) in draw_sets(seed, args.per_taxon, card.input.size).items():
            images[f"{seed}/{name}"] = x
    if args.subsample:
        images = {n: x[: args.subsample] for n, x in images.items()}
    graph = {n: graph_features(args.model / ONNX_FILE, x) for n, x in images.items()}
    stats = _stats(images["train"])
    mean, std = stats.mean(0), stats.std(0) + 1e-6
    blank = OodScorer(
        {"bank": graph["train"][1], "stats_mean": mean, "stats_std": std,
         "stats_bank": (stats - mean) / std, "threshold": np.float64(0.0)}
        | _identity(graph["train"][1].shape[1] + 4 + len(STAT_NAMES))
    )  # fmt: skip
    names = [n for n in images if n != "train"]
    base = {n: blank.inputs(graph[n][1], graph[n][0], images[n]) for n in names}
    top = {n: graph[n][0].max(1) for n in names}
    net = rebuild_network(args.model)
    s3_bank = stage3(net, images["train"])
    s3 = {n: stage3(net, images[n]) for n in names}
    signals = {"stage3": {n: np.log(knn_distance(s3_bank, s3[n]) + 1e-3)[:, None] for n in names}}
    # the stage-3 numbers themselves as inputs too, beside their kNN distance
    signals["stage3 + its vector"] = {n: np.c_[signals["stage3"][n], s3[n]] for n in names}
    if args.ae_epochs:
        errors = train_autoencoder(images["train"], args.ae_epochs)
        signals["ae"] = {n: errors(images[n]) for n in names}
    if args.simclr_epochs:
        encode = train_simclr(images["train"], args.simclr_epochs, args.simclr_side)
        bank = encode(images["train"])
        signals["simclr"] = {n: np.log(knn_distance(bank, encode(images[n])) + 1e-3)[:, None]
                             for n in names}  # fmt: skip
    softmax = float(card.thresholds.get("unknown_confidence", 0.0))
    results = {"served inputs (refit)": fit_and_rate(base, top, softmax, args.members)}
    for name, signal in signals.items():
        if name != "stage3 + its vector":
            results[f"{name} alone"] = rate({n: v[:, 0] for n, v in signal.items()}, top, softmax)
        rows = {n: np.concatenate([base[n], signal[n]], 1) for n in names}
        results[f"served inputs + {name}"] = fit_and_rate(rows, top, softmax, args.members)
    for label, r in results.items():
        print(f"{label:32s}", "  ".join(f"{n} {v}" for n, v in r.items() if "/" in n))
    report = {
        "model": card.release,
        "dev_seeds": args.dev_seeds,
        "target_validation_flagged": TARGET,
        "settings": vars(args) | {"model": str(args.model), "out": str(args.out)},
        "unknown_percent": results,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": platform.platform(),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
