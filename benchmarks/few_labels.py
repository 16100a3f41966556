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
              from the synthetic one), made in this run (or ``--ssl-backbone``: one made by
              the same recipe on the same pool, checked against its card)
- ssl+self    the ssl model as the teacher of one round of self-training on the same
              unlabelled crops (:mod:`seawatch.models.plankton.selftrain`; what
              ``seawatch train plankton --unlabelled-dir`` does), the student kept only if
              it beats the teacher on validation
- ssl+self2   the same with two rounds (``--self-training-rounds 2``: the round-1 student
              labels the crops for round 2), the best on validation kept; one run of two
              rounds answers for ssl+self (its first round) and ssl+self2
- ssl+flex    ssl+self with class-adaptive thresholds (``--self-training-min-threshold 0.6``:
              FlexMatch-style, a class the teacher passes few crops of at 0.8 gets a lower
              threshold, down to 0.6)
- ssl+flex2   both: two class-adaptive rounds (one run answers for ssl+flex and ssl+flex2)
- ssl+cons    the ssl model continued with FixMatch-style consistency training on the same
              unlabelled crops (:mod:`seawatch.models.plankton.consistency`; what
              ``seawatch train plankton --unlabelled-dir DIR --unlabelled-method
              consistency`` does), kept only if it beats the ssl model on validation

The fine-tuning mode (linear probe, last stages, full) of the pretrained starts is chosen on
the validation draw with the first seed, per label count, and kept for the other seeds.

Seeds: unlabelled pool 7_000_001, labelled pools 7_200_000 + seed, validation 7_100_003 (all
used for choices); the test draws (``--test-seed``, default 7_900_007; several, comma
separated, score the same models) are in the range 7_900_000-7_999_999 reserved for final
numbers and never used for a choice. Writes benchmarks/results/few_labels.json and
few_labels.png.

    python benchmarks/few_labels.py [--seeds 5] [--labels 5,10,20,50] [--ssl-epochs 15]
        [--test-seed 7900007,7900008] [--ssl-backbone DIR/backbone.pt]
        [--methods ssl,ssl+self,ssl+self2,ssl+flex,ssl+flex2] [--steps 300]
        [--student-epochs E] [--views 8]

``--steps``: the fine-tuning's optimiser steps (``finetune.schedule_for``'s target; the
self-training student and the consistency run get the same schedule as their teacher: the
student the teacher's batch and epochs, so on its labels + pseudo-labels, about 6x the
teacher's set, about 6x the steps). ``--student-epochs E``: the student's passes over its
labels + pseudo-labels instead (``SelfTrainParams.student_epochs``). ``--views V`` (4 or
8): every network is also scored with its logits averaged over V dihedral views of each
crop (what ``seawatch train plankton --views V`` exports inside the graph; V times the
compute), as the arm ``<arm>@V``; each arm's validation macro-F1 is recorded too, so the
choice between one view and V is made on validation.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress

from few_labels_arms import (
    METHODS,
    POOL_PER_CLASS,
    POOL_SEED,
    RESERVED,
    SELF_ARMS,
    TEST_PER_CLASS,
    TEST_SEED,
    UNLABELLED_SEED,
    VALIDATION_PER_CLASS,
    VALIDATION_SEED,
    init_worker,
    run_seed,
    self_arm,
)
from few_labels_report import plot, show, summarise
from seawatch.config import resolve_model_dir
from seawatch.models.plankton.backbone import BACKBONE_FILE, backbone_card, save_backbone
from seawatch.models.plankton.finetune import TARGET_STEPS
from seawatch.models.plankton.network import VIEW_COUNTS
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set
from seawatch.models.plankton.ssl import SslParams, pretrain_simclr

RESULTS = Path(__file__).parent / "results"


def ssl_start(args, unlabelled: np.ndarray, synthetic: Path, console: Console):
    """The SimCLR backbone: made now, or ``--ssl-backbone`` if its card names this recipe."""
    ssl_params = SslParams(epochs=args.ssl_epochs)
    if args.ssl_backbone is not None:
        source = backbone_card(args.ssl_backbone).get("source", {})
        if source.get("method") != ssl_params.describe() or source.get("data") != (
            f"{len(unlabelled)} unlabelled shifted crops"
        ):
            msg = (
                f"--ssl-backbone {args.ssl_backbone} was not made by this recipe "
                f"({source.get('method')!r}, {source.get('data')!r}); drop the option"
            )
            raise SystemExit(msg)
        console.print(f"SimCLR backbone from {args.ssl_backbone} (same recipe, same pool)")
        return args.ssl_backbone, ssl_params, source.get("loss_per_epoch", "see its card")
    with Progress(console=console) as progress:
        task = progress.add_task("SimCLR on unlabelled target crops", total=args.ssl_epochs)
        backbone, ssl_history = pretrain_simclr(
            unlabelled,
            start=synthetic,
            params=ssl_params,
            seed=0,
            on_epoch=lambda e, loss, s: progress.update(
                task, completed=e, description=f"SimCLR epoch {e} loss {loss:.3f} ({s:.0f} s)"
            ),
        )
    ssl_path = save_backbone(
        backbone,
        Path(tempfile.mkdtemp(prefix="ssl-backbone-")),
        {
            "method": ssl_params.describe(),
            "data": f"{len(unlabelled)} unlabelled shifted crops",
            "loss_per_epoch": ssl_history,
        },
    )
    return ssl_path, ssl_params, ssl_history


def modes_from(path: Path | None, methods: tuple[str, ...], counts: list[int]) -> dict:
    """Fine-tuning modes chosen on validation by an earlier run (same pools, same
    validation draw, same starts), so that every seed can run at once."""
    if path is None:
        return {}
    earlier = json.loads(path.read_text())["modes_chosen_on_validation"]
    wanted = [m for m in ("scratch", "synthetic", "ssl") if m in methods]
    missing = [f"{m}/{k}" for m in wanted for k in counts if str(k) not in earlier.get(m, {})]
    if missing:
        raise SystemExit(f"--modes-from {path} has no mode for {missing}; drop the option")
    return {m: {str(k): earlier[m][str(k)] | {"from": str(path)} for k in counts} for m in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", default="5,10,20,50")
    parser.add_argument("--ssl-epochs", type=int, default=15)
    parser.add_argument("--unlabelled-per-class", type=int, default=400)
    parser.add_argument(
        "--test-seed", default=str(TEST_SEED), help="test draw seeds, comma separated"
    )
    parser.add_argument("--ssl-backbone", type=Path, default=None, help="reuse a backbone.pt")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="arms to run (ssl+self needs ssl)"
    )
    parser.add_argument("--modes-from", type=Path, default=None, help="an earlier JSON")
    parser.add_argument(
        "--steps", type=int, default=TARGET_STEPS, help="fine-tuning steps (teacher, student)"
    )
    parser.add_argument(
        "--student-epochs",
        type=int,
        default=None,
        help="self-training student's passes over labels + pseudo-labels (teacher's epochs)",
    )
    parser.add_argument(
        "--views",
        type=int,
        default=1,
        choices=VIEW_COUNTS,
        help="also score every network averaging this many dihedral views (arm@V)",
    )
    parser.add_argument("--workers", type=int, default=1, help="seeds run at once")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.student_epochs is not None and args.student_epochs < 1:
        raise SystemExit(f"--student-epochs {args.student_epochs}: must be >= 1")
    counts = [int(k) for k in args.labels.split(",")]
    methods = tuple(m for m in METHODS if m in args.methods.split(","))
    unknown = set(args.methods.split(",")) - set(METHODS)
    needs_ssl = {*SELF_ARMS, "ssl+cons"} & set(methods)
    if unknown or not methods or (needs_ssl and "ssl" not in methods):
        raise SystemExit(f"--methods {args.methods}: some of {METHODS}; ssl+* need ssl")
    test_seeds = [int(s) for s in args.test_seed.split(",")]
    outside = [s for s in test_seeds if s not in RESERVED]
    if outside:
        raise SystemExit(f"--test-seed {outside}: test draws come from 7900000-7999999")
    console = Console()
    started = time.perf_counter()
    synthetic = resolve_model_dir(Path("models/plankton")) / BACKBONE_FILE
    if not synthetic.is_file():
        raise SystemExit(f"{synthetic} is missing: run `make models` (it writes the backbone)")

    console.print("drawing the target domain (unlabelled pool, validation, test) ...")
    unlabelled, _ = shifted_set(args.unlabelled_per_class, UNLABELLED_SEED)
    validation = shifted_set(VALIDATION_PER_CLASS, VALIDATION_SEED)
    tests = {s: shifted_set(TEST_PER_CLASS, s) for s in test_seeds}
    pools = [shifted_set(POOL_PER_CLASS, POOL_SEED + s) for s in range(args.seeds)]
    if "ssl" in methods:
        ssl_path, ssl_params, ssl_history = ssl_start(args, unlabelled, synthetic, console)
    else:
        ssl_path, ssl_params, ssl_history = None, SslParams(epochs=args.ssl_epochs), []
    starts = {"scratch": None, "synthetic": synthetic, "ssl": ssl_path}
    starts = {m: start for m, start in starts.items() if m in methods}

    results: dict[int, dict[str, dict[str, list[float]]]] = {
        s: {m: {} for m in methods} for s in test_seeds
    }
    on_validation: dict[str, dict[str, list[float]]] = {}
    chosen: dict[str, dict[str, object]] = modes_from(args.modes_from, methods, counts)
    context = {
        "methods": methods,
        "starts": starts,
        "pools": pools,
        "validation": validation,
        "tests": tests,
        "unlabelled": unlabelled,
        "steps": args.steps,
        "student_epochs": args.student_epochs,
        "views": args.views,
    }
    init_worker(context, args.threads or torch.get_num_threads())
    args.out.mkdir(parents=True, exist_ok=True)
    pool = (
        ProcessPoolExecutor(
            args.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(context, 1),
        )
        if args.workers > 1
        else None
    )

    def record(key: str, seed: int, out: dict) -> None:
        for method, f1s in out["scores"].items():
            for s, f1 in f1s.items():
                results[s].setdefault(method, {}).setdefault(key, []).append(f1)
        for method, f1 in out["validation"].items():
            on_validation.setdefault(method, {}).setdefault(key, []).append(f1)
        for method, choice in out["chosen"].items():
            chosen.setdefault(method, {})[key] = choice
        parts = (out["self"] or {}) | {"ssl+cons": out["consistency"]}
        for arm, part in parts.items():
            if part is not None:
                chosen.setdefault(arm, {}).setdefault(key, {})[str(seed)] = part
        console.print(f"{key} labels/class, seed {seed}: {out['scores']}")
        with (args.out / "few_labels.runs.jsonl").open("a") as log:  # kept if the run dies
            log.write(json.dumps({"labels": k, "seed": seed} | out) + "\n")

    for k in counts:
        key = str(k)
        seeds = list(range(args.seeds))
        if any(key not in chosen.get(m, {}) for m in starts):  # modes chosen on seed 0
            record(key, 0, run_seed(k, 0, None))
            seeds = seeds[1:]
        modes = {m: chosen[m][key]["mode"] for m in starts}
        if pool is None:
            done = [run_seed(k, seed, modes) for seed in seeds]
        else:
            done = list(pool.map(run_seed, [k] * len(seeds), seeds, [modes] * len(seeds)))
        for seed, out in zip(seeds, done, strict=True):
            record(key, seed, out)
    if pool is not None:
        pool.shutdown()
    for per_test in results.values():  # seed order, whatever order the workers finished in
        for per_k in per_test.values():
            for v in per_k.values():
                assert len(v) == args.seeds

    summaries = {s: summarise(results[s]) for s in test_seeds}
    shown = METHODS + tuple(f"{m}@{args.views}" for m in METHODS[2:] if args.views > 1)
    for s in test_seeds:
        show(console, summaries[s], counts, s, shown)
    first = summaries[test_seeds[0]]
    record_json = {
        "command": "python benchmarks/few_labels.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k != "out" and v is not None
        ),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {torch.get_num_threads()} torch threads, "
        f"{args.workers} worker(s) of 1 thread",
        "seconds": round(time.perf_counter() - started, 1),
        "classes": list(SHIFTED_TAXA),
        "seeds": {
            "unlabelled": UNLABELLED_SEED,
            "pools": f"{POOL_SEED} + seed",
            "validation": VALIDATION_SEED,
            "test": f"{test_seeds} (reserved range 7_900_000-7_999_999: never used for a choice)",
        },
        "sizes": {
            "unlabelled": len(unlabelled),
            "validation_per_class": VALIDATION_PER_CLASS,
            "test_per_class": TEST_PER_CLASS,
        },
        "ssl": {
            "method": ssl_params.describe(),
            "backbone": "made in this run"
            if args.ssl_backbone is None
            else f"{args.ssl_backbone} sha256 {backbone_card(args.ssl_backbone)['sha256']}",
            "loss_per_epoch": ssl_history,
        },
        "self_training": {arm: self_arm(arm).describe() for arm in SELF_ARMS if arm in methods},
        "consistency": "see modes_chosen_on_validation['ssl+cons'] (method per run)",
        "modes_chosen_on_validation": chosen,
        "macro_f1": first,
        "validation_macro_f1": summarise(on_validation),
        "macro_f1_by_test_seed": {str(s): v for s, v in summaries.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "few_labels.json").write_text(json.dumps(record_json, indent=2) + "\n")
    plot(summaries, counts, args.out / "few_labels.png", shown)
    console.print(f"wrote {args.out / 'few_labels.json'} and few_labels.png")


if __name__ == "__main__":
    main()
