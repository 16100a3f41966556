"""Lab: the many-label ceiling and better SimCLR teachers on the shifted instrument.
Development draws only (seeds 7_1xx_xxx and 7_2xx_xxx); the reserved draws are not read.

Draws (each cached under ``--cache`` per input size):

- unlabelled: the benchmark's pool, seed 7_000_001, ``--unlabelled-per-class`` per class
  (400: the benchmark's 4,800 crops);
- labelled: the benchmark's first pool (seed 7_200_000, 50 per class) for 50 labels, and a
  large pool (seed 7_260_000, 400 per class) for the many-label ceiling;
- scoring: the benchmark's validation draw (seed 7_100_003, 20 per class; the mode is chosen
  on it, as the benchmark does) and a larger dev draw (seed 7_100_060, 60 per class: 720
  images) that every run is scored on.

Subcommands::

    python experiments/plankton/teacher_ceiling.py ssl --epochs 15 --tag ssl15
    python experiments/plankton/teacher_ceiling.py ft --start synthetic --labels 400 \
        --modes last,full
    python experiments/plankton/teacher_ceiling.py ft --start /tmp/t24/ssl15/backbone.pt \
        --labels 50 --modes last

``ssl`` writes a backbone (and its card) under ``CACHE/TAG``; ``ft`` fine-tunes with the
benchmark's recipe (:func:`seawatch.models.plankton.finetune.transfer`, schedule sized to the
data) and appends one JSON line (validation and dev macro-F1 per mode, the mode the
validation draw picks, dev per-class F1, seconds) to ``CACHE/runs.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seawatch.config import resolve_model_dir
from seawatch.models.plankton.backbone import BACKBONE_FILE, save_backbone
from seawatch.models.plankton.finetune import macro_f1, predict, schedule_for, transfer
from seawatch.models.plankton.selftrain import SelfTrainParams, self_train
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set
from seawatch.models.plankton.ssl import SslParams, pretrain_simclr

N = len(SHIFTED_TAXA)
SEEDS = {
    "unlabelled": 7_000_001,
    "pool50": 7_200_000,
    "pool400": 7_260_000,
    "validation": 7_100_003,
    "dev": 7_100_060,
}
PER_CLASS = {"pool50": 50, "pool400": 400, "validation": 20, "dev": 60}


def draw(name: str, size: int, cache: Path, per_class: int | None = None, offset: int = 0) -> tuple:
    """One of the named draws at ``size`` px (its seed + ``offset``), cached as ``.npz``."""
    count = per_class if per_class is not None else PER_CLASS[name]
    suffix = f"_{offset}" if offset else ""
    path = cache / f"{name}_{count}_{size}{suffix}.npz"
    if not path.is_file():
        images, labels = shifted_set(count, SEEDS[name] + offset, size=size)
        np.savez(path, images=images, labels=labels)
    saved = np.load(path)
    return saved["images"], saved["labels"]


def first_per_class(images: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The first ``k`` images of every class, as the benchmark takes them."""
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(N)]))
    return images[keep], labels[keep]


def per_class_f1(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """F1 of every class."""
    out = {}
    for c, taxon in enumerate(SHIFTED_TAXA):
        tp = float(np.sum((predicted == c) & (truth == c)))
        wrong = float(np.sum((predicted == c) != (truth == c)))
        out[taxon] = round(2 * tp / (2 * tp + wrong), 3) if tp else 0.0
    return out


def run_ssl(args: argparse.Namespace) -> None:
    """SimCLR from the synthetic backbone on the unlabelled draw; backbone under CACHE/TAG."""
    unlabelled, _ = draw("unlabelled", args.size, args.cache, args.unlabelled_per_class)
    params = SslParams(epochs=args.epochs)
    started = time.perf_counter()
    backbone, history = pretrain_simclr(
        unlabelled,
        start=synthetic_backbone(),
        params=params,
        seed=0,
        on_epoch=lambda e, loss, s: print(f"epoch {e} loss {loss:.4f} ({s:.0f} s)", flush=True),
    )
    seconds = round(time.perf_counter() - started, 1)
    path = save_backbone(
        backbone,
        args.cache / args.tag,
        {
            "method": params.describe(),
            "data": f"{len(unlabelled)} unlabelled shifted crops",
            "loss_per_epoch": history,
            "input_size": args.size,
            "seconds": seconds,
        },
    )
    print(f"wrote {path} in {seconds} s", flush=True)


def synthetic_backbone() -> Path:
    """The committed synthetic-pretrained backbone."""
    return resolve_model_dir(Path("models/plankton")) / BACKBONE_FILE


def run_ft(args: argparse.Namespace) -> None:
    """Fine-tune with the benchmark's recipe, score on validation and the dev draw."""
    start = synthetic_backbone() if args.start == "synthetic" else Path(args.start)
    pool = "pool50" if args.labels <= 50 else "pool400"
    offset = args.pool_index
    train = first_per_class(*draw(pool, args.size, args.cache, offset=offset), args.labels)
    validation = draw("validation", args.size, args.cache)
    dev = draw("dev", args.size, args.cache)
    started = time.perf_counter()
    scores = {}
    best = None
    for mode in args.modes.split(","):
        schedule = schedule_for(len(train[1]), epochs=args.ft_epochs)
        done = transfer(
            train, validation, N, start=start, modes=(mode,), seed=args.seed, schedule=schedule
        )
        predicted = predict(done.model, dev[0])
        scores[mode] = {
            "validation": done.validation_f1[mode],
            "dev": round(macro_f1(dev[1], predicted, N), 4),
            "dev_per_class": per_class_f1(dev[1], predicted),
        }
        if best is None or done.validation_f1[mode] > scores[best[0]]["validation"]:
            best = (mode, done.model)
        print(mode, {k: v for k, v in scores[mode].items() if k != "dev_per_class"}, flush=True)
    record = {
        "start": str(args.start),
        "labels": args.labels,
        "size": args.size,
        "seed": args.seed,
        "pool_seed": SEEDS[pool] + offset,
        "schedule": str(schedule_for(len(train[1]), epochs=args.ft_epochs)),
        "modes": scores,
        "chosen_on_validation": best[0],
        "dev_of_chosen": scores[best[0]]["dev"],
        "fine_tune_seconds": round(time.perf_counter() - started, 1),
    }
    log_run(args, record)
    print(json.dumps({k: v for k, v in record.items() if k != "modes"}), flush=True)
    if args.self_train:
        for epochs in args.student_epochs.split(","):
            student = self_train_once(
                best[1], train, validation, dev, start, best[0], args, int(epochs)
            )
            log_run(args, {"teacher": {k: v for k, v in record.items() if k != "modes"}} | student)


def log_run(args: argparse.Namespace, record: dict) -> None:
    """Append one JSON line (the command line included) to ``--log``."""
    record = {"command": " ".join(sys.argv)} | record
    with (args.log or args.cache / "runs.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")


def self_train_once(teacher, train, validation, dev, start, mode, args, epochs: int) -> dict:
    """One round of the default self-training from ``teacher``, the student trained for
    ``epochs`` epochs of the labelled set's batches (the benchmark: the teacher's schedule);
    dev scores of the student."""
    unlabelled, _ = draw("unlabelled", args.size, args.cache, args.unlabelled_per_class)
    schedule = schedule_for(len(train[1]), epochs=epochs)
    started = time.perf_counter()
    done = self_train(
        teacher,
        train,
        unlabelled,
        validation,
        start=start,
        mode=mode,
        params=SelfTrainParams(student_average=args.student_average),
        seed=args.seed,
        schedule=schedule,
    )
    student_images = len(train[1]) + int(done.rounds[0]["pseudo_labels"])
    out = {
        "student_schedule": str(schedule),
        "student_epochs": schedule.epochs,
        "student_steps": schedule.epochs * math.ceil(student_images / schedule.batch_size),
        "validation": done.rounds[0]["validation_macro_f1"],
        "dev": round(macro_f1(dev[1], predict(done.model, dev[0]), N), 4),
        "dev_8_views": round(macro_f1(dev[1], predict(done.model, dev[0], views=8), N), 4),
        "student_average": args.student_average,
        "pseudo_labels": done.rounds[0]["pseudo_labels"],
        "per_class": done.rounds[0]["per_class"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print("student", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("ssl", "ft"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/t24"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--unlabelled-per-class", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--tag", default="ssl15")
    parser.add_argument("--start", default="synthetic", help="'synthetic' or a backbone.pt")
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--modes", default="linear,last,full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-index", type=int, default=0, help="labelled pool seed + this")
    parser.add_argument("--ft-epochs", type=int, default=None, help="None: schedule_for's")
    parser.add_argument("--self-train", action="store_true")
    parser.add_argument(
        "--student-average", type=float, default=None, help="the student's weight-EMA decay"
    )
    parser.add_argument("--log", type=Path, default=None, help="JSON lines (CACHE/runs.jsonl)")
    parser.add_argument(
        "--student-epochs",
        default="30",
        help="comma separated epochs over labels + pseudo-labels at the teacher's batch",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    run_ssl(args) if args.what == "ssl" else run_ft(args)


if __name__ == "__main__":
    main()
