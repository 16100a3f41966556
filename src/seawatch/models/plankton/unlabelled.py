"""What ``--unlabelled-dir`` does after fine-tuning: one of two ways to learn from the
instrument's unlabelled crops, each kept only if it wins on validation.

- ``self-training`` (the default): offline rounds (one by default) of pseudo-labels from the
  fine-tuned model and a student trained again from the start (:mod:`.selftrain`); on the few-label
  benchmark's validation draw it bought +3 points, consistency at the budget below +0.3 to
  +0.7 (``experiments/plankton/README.md``);
- ``consistency``: FixMatch-style consistency training from the fine-tuned
  model (:mod:`.consistency`): pseudo-labels renewed at every step by an EMA teacher,
  learnt from strong views; a third of the fine-tuning's steps (each costs about twice one of
  them), as many labelled crops a step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np

from seawatch.models.plankton.consistency import ConsistencyParams, keep_consistent
from seawatch.models.plankton.finetune import Mode, Schedule
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.selftrain import SelfTrainParams, keep_better

UnlabelledMethod = Literal["consistency", "self-training"]
UNLABELLED_METHODS: tuple[str, ...] = ("consistency", "self-training")


def learn_from_unlabelled(
    model: PlanktonNet,
    model_f1: float,
    train: tuple[np.ndarray, np.ndarray],
    unlabelled: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    method: UnlabelledMethod,
    start: Path | None,
    mode: Mode,
    schedule: Schedule,
    seed: int = 0,
    device: str = "cpu",
    self_training: SelfTrainParams | None = None,
) -> tuple[PlanktonNet, dict[str, object]]:
    """Run ``method`` on the fine-tuned ``model`` (validation macro-F1 ``model_f1``) and
    return the model kept and the card's summary (``method`` in it); ``self_training``:
    the rounds and thresholds of self-training (None: :class:`SelfTrainParams`' defaults)."""
    if method == "consistency":
        steps = schedule.epochs * math.ceil(len(train[1]) / schedule.batch_size)
        params = ConsistencyParams(steps=math.ceil(steps / 3), batch_size=schedule.batch_size)
        kept, summary = keep_consistent(
            model,
            model_f1,
            train,
            unlabelled,
            validation,
            mode=mode,
            params=params,
            seed=seed,
            device=device,
        )
    elif method == "self-training":
        kept, summary = keep_better(
            model,
            model_f1,
            train,
            unlabelled,
            validation,
            start=start,
            mode=mode,
            params=self_training,
            seed=seed,
            device=device,
            schedule=schedule,
        )
    else:
        msg = f"unlabelled method {method!r} is not one of {', '.join(UNLABELLED_METHODS)}"
        raise ValueError(msg)
    return kept, {"unlabelled_method": method} | summary


__all__ = ["UNLABELLED_METHODS", "UnlabelledMethod", "learn_from_unlabelled"]
