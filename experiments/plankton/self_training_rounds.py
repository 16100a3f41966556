"""Lab: self-training rounds and class-adaptive thresholds from a saved teacher. Validation
only (the test draws are scored once, by ``score_self_training_rounds.py``).

The few-label benchmark's draws: unlabelled pool (seed 7_000_001, 400 per class), first
labelled pool (seed 7_200_000, ``--labels`` per class), validation (seed 7_100_003). From a
saved fine-tuned teacher (``--teacher``, a PlanktonNet state_dict fine-tuned from ``--start``
in ``--mode``), ``--rounds`` rounds of :func:`seawatch.models.plankton.selftrain.self_train`,
round r seeded as ``SelfTrainParams(rounds=N)`` seeds it (``--first-round`` continues from a
saved student); each student saved as ``OUT/TAG_rR.pt``. Prints each round's pseudo-label
counts, their precision (the pool is synthetic, its truth known: a diagnosis, never a
choice), and validation macro-F1 (single view and 8-view TTA).

    python experiments/plankton/self_training_rounds.py --teacher /tmp/few90/teacher.pt \
        --start /tmp/fewdev/ssl15/backbone.pt --tag flex --min-threshold 0.6 --rounds 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from seawatch.models.plankton.finetune import macro_f1, new_model, predict
from seawatch.models.plankton.selftrain import (
    SelfTrainParams,
    class_thresholds,
    dihedral_probabilities,
    pick_pseudo_labels,
    self_train,
)
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set

N = len(SHIFTED_TAXA)


def first_per_class(images: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The first ``k`` images of every class, as the benchmark takes them."""
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(N)]))
    return images[keep], labels[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--start", type=Path, required=True)
    parser.add_argument("--mode", default="last", choices=("linear", "last", "full"))
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--tag", default="student")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--min-threshold", type=float, default=None)
    parser.add_argument("--cap", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--first-round", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/self-training-rounds"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    unlabelled, truth = shifted_set(400, 7_000_001)
    validation = shifted_set(20, 7_100_003)
    train = first_per_class(*shifted_set(50, 7_200_000), args.labels)
    model, _ = new_model(N, train[0], args.start)
    model.load_state_dict(torch.load(args.teacher))
    params = SelfTrainParams(args.threshold, args.cap, 1, args.min_threshold)
    for r in range(args.first_round - 1, args.first_round - 1 + args.rounds):
        started = time.perf_counter()
        probabilities = dihedral_probabilities(model, unlabelled)
        chosen, pseudo = pick_pseudo_labels(
            probabilities,
            class_thresholds(probabilities, args.threshold, args.min_threshold),
            args.cap,
        )
        precision = float((truth[chosen] == pseudo).mean()) if len(chosen) else 0.0
        done = self_train(
            model,
            train,
            unlabelled,
            validation,
            start=args.start,
            mode=args.mode,
            params=params,
            seed=r,
        )
        model = done.model
        torch.save(model.state_dict(), args.out / f"{args.tag}_r{r + 1}.pt")
        tta = macro_f1(validation[1], dihedral_probabilities(model, validation[0]).argmax(1), N)
        print(
            f"{args.tag} round {r + 1}: {done.rounds[0]} pseudo-label precision "
            f"{precision:.3f}, validation TTA {tta:.4f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    single = macro_f1(validation[1], predict(model, validation[0]), N)
    print(f"last student: validation macro-F1 {single:.4f}")


if __name__ == "__main__":
    main()
