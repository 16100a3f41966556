"""Lab: does self-training on the unlabelled target crops help few-label fine-tuning?
Validation only.

The few-label benchmark's draws: unlabelled pool (seed 7_000_001, 400 per class), first
labelled pool (seed 7_200_000), validation (seed 7_100_003; never the test draws). A teacher
fine-tuned from ``--start`` in ``--mode`` on ``--labels`` per class, then one round of
self-training (:mod:`seawatch.models.plankton.selftrain`) with the teacher's schedule;
macro-F1 on validation, single view and averaged over the 8 rotations/flips (TTA).

    python experiments/plankton/self_training.py --start /tmp/ssl-backbone/backbone.pt \
        --labels 50 --mode last --threshold 0.8 --cap 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from seawatch.models.plankton.finetune import (
    macro_f1,
    new_model,
    predict,
    schedule_for,
    train_mode,
)
from seawatch.models.plankton.selftrain import SelfTrainParams, dihedral_probabilities, self_train
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set

N = len(SHIFTED_TAXA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, default=Path("models/plankton/backbone.pt"))
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--mode", default="last", choices=("linear", "last", "full"))
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--cap", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    unlabelled, _ = shifted_set(400, 7_000_001)
    validation = shifted_set(20, 7_100_003)
    pool = shifted_set(50, 7_200_000)
    keep = np.sort(np.concatenate([np.flatnonzero(pool[1] == c)[: args.labels] for c in range(N)]))
    train = (pool[0][keep], pool[1][keep])
    schedule = schedule_for(len(keep))
    started = time.perf_counter()
    torch.manual_seed(0)
    teacher, _ = new_model(N, train[0], args.start)
    train_mode(teacher, *train, args.mode, schedule, seed=0)

    def scores(model) -> str:
        one = macro_f1(validation[1], predict(model, validation[0]), N)
        tta = macro_f1(validation[1], dihedral_probabilities(model, validation[0]).argmax(1), N)
        return f"validation macro-F1 {one:.4f}, TTA {tta:.4f}"

    print(f"teacher: {scores(teacher)} ({time.perf_counter() - started:.0f} s)", flush=True)
    started = time.perf_counter()
    done = self_train(
        teacher,
        train,
        unlabelled,
        validation,
        start=args.start,
        mode=args.mode,  # type: ignore[arg-type]
        params=SelfTrainParams(threshold=args.threshold, cap=args.cap),
        schedule=schedule,
    )
    print(f"student: {scores(done.model)} {done.rounds} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
