"""Few labels on an instrument the models never saw: how much does a pretrained start buy?

Target domain: :mod:`seawatch.models.plankton.shifted` (another instrument: coarser optics,
anisotropic blur, mostly dark-field, other shapes and styles of the same ten taxa, two new
taxa, other noise and background). For 5, 10, 20 and 50 labels per class (12 classes), and
several seeds (each seed draws its own labelled images), four ways to learn:

- classical   HOG + morphometric features, logistic regression (C chosen on validation):
              what a user could write in 20 lines (EcoTaxa and the UVP6 use such features)
- scratch     PlanktonNet from random weights (schedule sized to the data)
- synthetic   from the committed synthetic-pretrained backbone (models/plankton/backbone.pt)
- ssl         from a backbone pretrained with SimCLR on unlabelled target crops (starting
              from the synthetic one), made in this run

The fine-tuning mode (linear probe, last stages, full) of the pretrained starts is chosen on
the validation draw with the first seed, per label count, and kept for the other seeds.

Seeds: unlabelled pool 7_000_001, labelled pools 7_200_000 + seed, validation 7_100_003 (all
used for choices); the test draw 7_900_007 is in the range 7_900_000-7_999_999 reserved for
final numbers and never used for a choice. Writes benchmarks/results/few_labels.json and
few_labels.png.

    python benchmarks/few_labels.py [--seeds 5] [--labels 5,10,20,50] [--ssl-epochs 15]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from seawatch.config import resolve_model_dir
from seawatch.models.plankton.backbone import BACKBONE_FILE, save_backbone
from seawatch.models.plankton.classical import fit_classical
from seawatch.models.plankton.finetune import (
    MODES,
    macro_f1,
    new_model,
    predict,
    schedule_for,
    train_mode,
    transfer,
)
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set
from seawatch.models.plankton.ssl import SslParams, pretrain_simclr

RESULTS = Path(__file__).parent / "results"
UNLABELLED_SEED, POOL_SEED, VALIDATION_SEED, TEST_SEED = 7_000_001, 7_200_000, 7_100_003, 7_900_007
POOL_PER_CLASS, VALIDATION_PER_CLASS, TEST_PER_CLASS = 50, 20, 100
N_CLASSES = len(SHIFTED_TAXA)
METHODS = ("classical", "scratch", "synthetic", "ssl")


def first_per_class(images: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The first ``k`` images of every class (pools are shuffled, so nested random subsets)."""
    keep = np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(N_CLASSES)])
    keep.sort()
    return images[keep], labels[keep]


def run_nn(train, test, start: Path | None, mode: str, seed: int) -> float:
    """Train one network (``mode`` from ``start``) and score it on ``test``."""
    torch.manual_seed(seed)
    model, _ = new_model(N_CLASSES, train[0], start)
    schedule = schedule_for(len(train[1]))
    train_mode(model, *train, mode, schedule, seed=seed, pretrained=start is not None)
    return macro_f1(test[1], predict(model, test[0]), N_CLASSES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", default="5,10,20,50")
    parser.add_argument("--ssl-epochs", type=int, default=15)
    parser.add_argument("--unlabelled-per-class", type=int, default=400)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = [int(k) for k in args.labels.split(",")]
    console = Console()
    started = time.perf_counter()
    synthetic = resolve_model_dir(Path("models/plankton")) / BACKBONE_FILE
    if not synthetic.is_file():
        raise SystemExit(f"{synthetic} is missing: run `make models` (it writes the backbone)")

    console.print("drawing the target domain (unlabelled pool, validation, test) ...")
    unlabelled, _ = shifted_set(args.unlabelled_per_class, UNLABELLED_SEED)
    validation = shifted_set(VALIDATION_PER_CLASS, VALIDATION_SEED)
    test = shifted_set(TEST_PER_CLASS, TEST_SEED)
    pools = [shifted_set(POOL_PER_CLASS, POOL_SEED + s) for s in range(args.seeds)]

    with Progress(console=console) as progress:
        task = progress.add_task("SimCLR on unlabelled target crops", total=args.ssl_epochs)
        ssl_params = SslParams(epochs=args.ssl_epochs)
        backbone, ssl_history = pretrain_simclr(
            unlabelled,
            start=synthetic,
            params=ssl_params,
            seed=0,
            on_epoch=lambda e, loss, s: progress.update(
                task, completed=e, description=f"SimCLR epoch {e} loss {loss:.3f} ({s:.0f} s)"
            ),
        )
    scratch_dir = Path(tempfile.mkdtemp(prefix="ssl-backbone-"))
    ssl_path = save_backbone(
        backbone,
        scratch_dir,
        {"method": ssl_params.describe(), "data": f"{len(unlabelled)} unlabelled shifted crops"},
    )
    starts = {"scratch": None, "synthetic": synthetic, "ssl": ssl_path}

    results: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    chosen: dict[str, dict[str, object]] = {}
    with Progress(console=console) as progress:
        task = progress.add_task("fine-tuning", total=len(counts) * args.seeds * len(METHODS))
        for k in counts:
            key = str(k)
            for seed in range(args.seeds):
                train = first_per_class(*pools[seed], k)
                model = fit_classical(train, validation)
                results["classical"].setdefault(key, []).append(
                    macro_f1(test[1], model.predict(test[0]), N_CLASSES)
                )
                progress.advance(task)
                for method, start in starts.items():
                    if seed == 0:  # the mode, chosen on validation with the first seed
                        done = transfer(
                            train, validation, N_CLASSES, start=start, modes=MODES, seed=seed
                        )
                        chosen.setdefault(method, {})[key] = {
                            "mode": done.mode,
                            "validation_macro_f1": done.validation_f1,
                        }
                        f1 = macro_f1(test[1], predict(done.model, test[0]), N_CLASSES)
                    else:
                        mode = chosen[method][key]["mode"]
                        f1 = run_nn(train, test, start, mode, seed)
                    results[method].setdefault(key, []).append(f1)
                    progress.advance(task)
                    progress.update(task, description=f"{k} labels/class, seed {seed}, {method}")

    summary = {
        method: {
            k: {
                "mean": round(float(np.mean(v)), 4),
                "std": round(float(np.std(v)), 4),
                "runs": [round(x, 4) for x in v],
            }
            for k, v in per_k.items()
        }
        for method, per_k in results.items()
    }
    table = Table(title="macro-F1 on the shifted test draw (mean ± std over seeds)")
    table.add_column("labels/class", justify="right")
    for method in METHODS:
        table.add_column(method, justify="right")
    for k in counts:
        row = [str(k)]
        for m in METHODS:
            s = summary[m][str(k)]
            row.append(f"{s['mean']:.3f} ± {s['std']:.3f}")
        table.add_row(*row)
    console.print(table)
    for k in counts:
        best = max(summary["synthetic"][str(k)]["mean"], summary["ssl"][str(k)]["mean"])
        console.print(
            f"{k:>3} labels: best pretrained - scratch = "
            f"{100 * (best - summary['scratch'][str(k)]['mean']):+.1f} points, "
            f"- classical = {100 * (best - summary['classical'][str(k)]['mean']):+.1f} points"
        )
    record = {
        "command": "python benchmarks/few_labels.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} cpus={torch.get_num_threads()} torch threads",
        "seconds": round(time.perf_counter() - started, 1),
        "classes": list(SHIFTED_TAXA),
        "seeds": {
            "unlabelled": UNLABELLED_SEED,
            "pools": f"{POOL_SEED} + seed",
            "validation": VALIDATION_SEED,
            "test": f"{TEST_SEED} (reserved range 7_900_000-7_999_999: never used for a choice)",
        },
        "sizes": {
            "unlabelled": len(unlabelled),
            "validation_per_class": VALIDATION_PER_CLASS,
            "test_per_class": TEST_PER_CLASS,
        },
        "ssl": {"method": ssl_params.describe(), "loss_per_epoch": ssl_history},
        "modes_chosen_on_validation": chosen,
        "macro_f1": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "few_labels.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(summary, counts, args.out / "few_labels.png")
    console.print(f"wrote {args.out / 'few_labels.json'} and few_labels.png")


def plot(summary: dict, counts: list[int], path: Path) -> None:
    """Learning curves: macro-F1 against labels per class, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method, marker in zip(METHODS, "osD^", strict=True):
        means = [summary[method][str(k)]["mean"] for k in counts]
        stds = [summary[method][str(k)]["std"] for k in counts]
        ax.errorbar(counts, means, yerr=stds, marker=marker, capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(k) for k in counts])
    ax.minorticks_off()
    ax.set_xlabel("labelled images per class (log scale)")
    ax.set_ylabel("macro-F1 on the shifted test draw")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Few labels on an unseen instrument (12 classes, 2 of them new)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
