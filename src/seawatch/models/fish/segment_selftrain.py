"""The fish network's self-training: the plankton recipe's rows that fit the time.

:func:`run` follows :func:`seawatch.models.segmentation.selftrain.run` with its pieces
(quality set, pseudo-labels, quality filter, distillation), but fits only three rows of its
ablation: the **teacher** (stage 1 on the labelled third), **supervised, 1/3** (the teacher
fitted further on the same masks: the same number of steps as the student, so the student's
gain is not more steps) and the served **student** (quality-filtered pseudo-labels plus
distillation from the teacher's soft maps on the unlabelled scenes). Imports torch.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from seawatch.models.segmentation.data import Tiles
from seawatch.models.segmentation.fit import FitSettings, TrainData, fit_quality, fit_segnet
from seawatch.models.segmentation.network import SegNet
from seawatch.models.segmentation.selftrain import (
    Plan,
    Progress,
    Result,
    _join,
    _supervised,
    pseudo_label,
    pseudo_targets,
    quality_set,
)

STUDENT = "self_training_quality_kd"


def run(
    plan: Plan, pool: Tiles, extra: Tiles | None = None, progress: Progress | None = None
) -> Result:
    """Teacher, supervised 1/3, quality network and distilled student on ``pool`` (its
    first ``plan.labelled`` tiles labelled) and the never-labelled ``extra`` tiles."""
    torch.set_num_threads(1)  # on a shared CPU more threads only spin against each other
    say = progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    labelled = pool.subset(range(plan.labelled))
    unlabelled = pool.subset(range(plan.labelled, len(pool)))
    if extra is not None and len(extra):
        unlabelled = Tiles(
            np.concatenate([unlabelled.inputs, extra.inputs]),
            np.concatenate([unlabelled.labels, extra.labels]),  # for scoring pseudo-labels only
        )

    def fit(name: str, data: TrainData, settings: FitSettings, seed: int, start=None) -> SegNet:
        started = time.perf_counter()
        done = [0]

        def step(n: int, loss: float) -> None:
            done[0] += n
            say(f"{name} loss {loss:.3f}", done[0], settings.steps)

        net = fit_segnet(data, settings, seed=seed, start=start, progress=step)
        seconds[name] = round(time.perf_counter() - started, 1)
        return net

    second = replace(plan.fit, steps=plan.student_steps, lr=plan.student_lr)
    supervised = _supervised(labelled)
    teacher = fit("teacher", supervised, plan.fit, plan.seed)
    nets = {"supervised_third": fit("supervised_third", supervised, second, plan.seed, teacher)}

    started = time.perf_counter()
    sets = []
    for k, held in enumerate(np.array_split(np.arange(plan.labelled), plan.folds)):
        rest = np.setdiff1d(np.arange(plan.labelled), held)
        fold_fit = replace(plan.fit, steps=max(1, plan.fit.steps // 2))
        net = fit(f"fold_{k}", _supervised(labelled.subset(rest)), fold_fit, plan.seed + 1 + k)
        sets.append(quality_set(net, labelled.subset(held)))  # held out: a teacher's errors
        sets.append(quality_set(net, labelled.subset(rest)))  # seen: its good masks
    windows, iou = (np.concatenate([s[j] for s in sets]) for j in range(2))
    counts["quality_training_instances"] = len(iou)
    done = [0]

    def q_step(n: int, loss: float) -> None:
        done[0] += n
        say(f"quality loss {loss:.3f}", done[0], plan.quality_steps)

    quality = fit_quality(windows, iou, steps=plan.quality_steps, seed=plan.seed, progress=q_step)
    seconds["quality"] = round(time.perf_counter() - started, 1)

    pseudo = pseudo_label(teacher, quality, unlabelled, flips=plan.flips)
    soft = np.clip(np.round(pseudo.maps * 255.0), 0, 255).astype(np.uint8)
    fg, ct, wt, kept, dropped = pseudo_targets(pseudo, plan.quality_threshold)
    counts["pseudo_kept"], counts["pseudo_dropped"] = kept, dropped
    pseudo_data = TrainData(unlabelled.inputs, fg, ct, wt, soft, np.ones(len(unlabelled), bool))
    student_fit = replace(second, kd_weight=plan.kd_weight)
    nets[STUDENT] = fit(STUDENT, _join(supervised, pseudo_data), student_fit, plan.seed, teacher)
    return Result(nets, teacher, quality, pseudo, seconds, counts)


__all__ = ["STUDENT", "run"]
