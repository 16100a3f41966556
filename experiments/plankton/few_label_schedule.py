"""Lab: does a longer schedule help fine-tuning on the shifted instrument? Validation only.

Scores on the few-label benchmark's validation draw (seed 7_100_003; never the test draw)
with 10 and 50 labels per class from the first labelled pool (seed 7_200_000), from the
committed synthetic-pretrained backbone, modes ``last`` and ``full``, at 300 and 600
optimiser steps.

    python experiments/plankton/few_label_schedule.py
"""

from __future__ import annotations

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
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set

START = Path("models/plankton/backbone.pt")
N = len(SHIFTED_TAXA)


def main() -> None:
    validation = shifted_set(20, 7_100_003)
    pool = shifted_set(50, 7_200_000)
    for k in (10, 50):
        keep = np.sort(np.concatenate([np.flatnonzero(pool[1] == c)[:k] for c in range(N)]))
        train = (pool[0][keep], pool[1][keep])
        base = schedule_for(len(keep))
        for steps in (300, 600):
            epochs = base.epochs * steps // 300
            for mode in ("last", "full"):
                torch.manual_seed(0)
                started = time.perf_counter()
                model, _ = new_model(N, train[0], START)
                schedule = type(base)(epochs, base.batch_size, base.lr)
                train_mode(model, *train, mode, schedule, seed=0)
                f1 = macro_f1(validation[1], predict(model, validation[0]), N)
                print(f"k={k} steps={steps} mode={mode} val_macro_f1={f1:.4f} "
                      f"seconds={time.perf_counter() - started:.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
