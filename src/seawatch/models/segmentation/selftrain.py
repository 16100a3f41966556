"""Seed 001's recipe on plankton frames: teacher, pseudo-labels, quality filter, student.

1. **Teacher**: a U-Net fitted on the labelled third of the pool. Every row trains in two
   stages of equal length (so no row gets more steps): "supervised, 1/3" is the teacher
   fitted further on the same masks, "supervised, all" two stages on all the pool's masks.
2. **Quality data**: the labelled third in two folds; a U-Net fitted on each fold predicts the
   other, and every instance it finds gets its true IoU. The quality network learns to
   predict that IoU from the instance's window (image, maps, mask), on labelled data only.
3. **Pseudo-labels**: the teacher's instances on the unlabelled two thirds (the same tiles
   whose masks the "supervised, all" row uses), each with its predicted IoU.
4. **Students**, U-Nets started from the teacher's weights and fitted on the labelled third
   plus the pseudo-labelled tiles (the pool's other two thirds, whose masks only the
   "supervised, all" row uses, and ``unlabelled_extra`` more tiles nobody labelled): all
   pseudo-instances kept; only those the quality network scores at ``quality_threshold`` or
   over (the region of the others ignored, not called background); and those plus pixel-wise
   distillation from the teacher's soft maps on the unlabelled tiles.

Every row is scored the same way (:mod:`.evaluate`): instance mIoU at the daemon's
resolution on tiles no fit has seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np
import torch

from seawatch.ingest.segment_model import instances, quality_windows
from seawatch.models.segmentation.data import Tiles, targets
from seawatch.models.segmentation.fit import (
    FitSettings,
    TrainData,
    fit_quality,
    fit_segnet,
    predict_maps,
    predict_quality,
)
from seawatch.models.segmentation.metrics import best_iou_per_pred
from seawatch.models.segmentation.network import QualityNet, SegNet

ROWS = (
    ("supervised_third", "supervised, 1/3 of the masks"),
    ("supervised_all", "supervised, all masks"),
    ("self_training", "self-training, no quality filter"),
    ("self_training_quality", "self-training + quality filter"),
    ("self_training_quality_kd", "self-training + quality filter + distillation"),
)
SERVED_ROW = "self_training_quality_kd"
# Plan.rows: the whole ablation; only the served student's path; or that path plus
# "supervised, 1/3" (the student's yardstick at the same number of steps: the fish detector)
ROW_SETS = ("all", "served", "served+third")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Plan:
    """The data and schedule of one self-training run (seeds: development draws 7,100,2xx;
    the final test draw 7,900,070 is never used here)."""

    pool: int = 18  # tiles with masks: "supervised, all" uses them all
    labelled: int = 6  # the third whose masks the teacher and the students see
    unlabelled_extra: int = 72  # more tiles for the students, never labelled
    fit: FitSettings = field(default_factory=lambda: FitSettings(steps=800))
    student_steps: int = 800  # every row's second stage
    student_lr: float = 1.5e-3
    kd_weight: float = 1.0
    flips: bool = True  # the teacher's maps on unlabelled tiles: mean over mirror images
    quality_threshold: float = 0.5
    quality_steps: int = 800
    folds: int = 2
    seed: int = 0
    pool_seed: int = 7_100_200
    unlabelled_seed: int = 7_100_202
    rows: str = "all"  # one of ROW_SETS
    # the share of each student batch drawn from the labelled tiles (None: every tile the
    # students see, labelled or not, drawn alike)
    labelled_share: float | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.labelled < self.pool:
            msg = f"need 2 <= labelled < pool tiles, got labelled={self.labelled}, pool={self.pool}"
            raise ValueError(msg)
        if self.rows not in ROW_SETS:
            msg = f"rows must be one of {ROW_SETS}, got {self.rows!r}"
            raise ValueError(msg)
        if self.labelled_share is not None and not 0 < self.labelled_share < 1:
            msg = f"labelled_share must be between 0 and 1 (exclusive), got {self.labelled_share}"
            raise ValueError(msg)

    def summary(self) -> dict:
        """The plan as plain data (for the card)."""
        return asdict(self)


QUICK = Plan(
    pool=6,
    labelled=3,
    unlabelled_extra=2,
    fit=FitSettings(steps=3, batch=2, crop=64),
    student_steps=2,
    quality_steps=3,
)


@dataclass
class PseudoSet:
    """The teacher's instances on some tiles, with their predicted (and true) IoU."""

    maps: np.ndarray  # N x 2 x H x W float32
    labels: list[np.ndarray]
    predicted: list[np.ndarray]
    true: list[np.ndarray]


@dataclass
class Result:
    """The fitted networks of every row, the quality network and what was measured on the
    way (seconds per stage, pseudo-label counts)."""

    nets: dict[str, SegNet]
    teacher: SegNet  # stage 1 on the labelled third: the pseudo-labels and soft maps
    quality: QualityNet
    teacher_pseudo: PseudoSet
    seconds: dict[str, float]
    counts: dict[str, int]


def _supervised(tiles: Tiles) -> TrainData:
    fg, centre = targets(tiles.labels)
    return TrainData(tiles.inputs, fg, centre)


def _instances_of(maps: np.ndarray) -> list[np.ndarray]:
    return [instances(m) for m in maps]


def _windows(inputs: np.ndarray, maps: np.ndarray, labels: list[np.ndarray]):
    windows, owner = [], []
    for i, lab in enumerate(labels):
        ids = list(range(1, int(lab.max(initial=0)) + 1))
        windows.append(quality_windows(inputs[i], maps[i], lab, ids))
        owner += [i] * len(ids)
    return np.concatenate(windows), np.array(owner, np.int64)


def quality_set(net: SegNet, tiles: Tiles) -> tuple[np.ndarray, np.ndarray]:
    """Windows and true IoU of every instance ``net`` finds in ``tiles`` (labelled ones)."""
    maps = predict_maps(net, tiles.inputs)
    labels = _instances_of(maps)
    windows, _ = _windows(tiles.inputs, maps, labels)
    iou = np.concatenate(
        [best_iou_per_pred(lab, truth) for lab, truth in zip(labels, tiles.labels, strict=True)]
    )
    return windows, iou


def pseudo_label(
    net: SegNet, quality: QualityNet, tiles: Tiles, *, with_truth: bool = True, flips=False
) -> PseudoSet:
    """``net``'s instances on ``tiles`` (maps averaged over mirror images with ``flips``)
    with the quality network's predicted IoU of each (and, for scoring only, the true IoU)."""
    maps = predict_maps(net, tiles.inputs, flips=flips)
    labels = _instances_of(maps)
    windows, owner = _windows(tiles.inputs, maps, labels)
    scores = predict_quality(quality, windows)
    predicted = [scores[owner == i] for i in range(len(tiles))]
    true = [
        best_iou_per_pred(lab, truth) if with_truth else np.zeros(0)
        for lab, truth in zip(labels, tiles.labels, strict=True)
    ]
    return PseudoSet(maps, labels, predicted, true)


def pseudo_targets(
    pseudo: PseudoSet, threshold: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Foreground, centre-ness and weight targets from pseudo-instances; with a ``threshold``,
    instances predicted under it are dropped and their region (grown by 2 px) weighs 0.
    Returns the three arrays and the numbers of instances kept and dropped."""
    fgs, cts, wts = [], [], []
    kept = dropped = 0
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for labels, scores in zip(pseudo.labels, pseudo.predicted, strict=True):
        weight = np.ones(labels.shape, np.float32)
        if threshold is not None and len(scores):
            bad = np.flatnonzero(scores < threshold) + 1
            if len(bad):
                region = np.isin(labels, bad).astype(np.uint8)
                weight[cv2.dilate(region, disc) > 0] = 0.0
                labels = np.where(np.isin(labels, bad), 0, labels)
            dropped += len(bad)
        kept += len(scores) - (len(np.flatnonzero(scores < threshold)) if threshold else 0)
        fg, ct = targets(labels)
        fgs.append(fg)
        cts.append(ct)
        wts.append(weight)
    return np.stack(fgs), np.stack(cts), np.stack(wts), kept, dropped


def _join(a: TrainData, b: TrainData) -> TrainData:
    def cat(x, y, fill):
        if x is None and y is None:
            return None
        x = x if x is not None else fill(a)
        y = y if y is not None else fill(b)
        return np.concatenate([x, y])

    return TrainData(
        np.concatenate([a.inputs, b.inputs]),
        np.concatenate([a.fg, b.fg]),
        np.concatenate([a.centre, b.centre]),
        cat(a.weight, b.weight, lambda d: np.ones(d.fg.shape, np.float32)),
        cat(a.soft, b.soft, lambda d: np.zeros((len(d), 2, *d.fg.shape[1:]), np.uint8)),
        cat(a.distil, b.distil, lambda d: np.zeros(len(d), bool)),
    )


def split_pool(plan: Plan, pool: Tiles, extra: Tiles | None) -> tuple[Tiles, Tiles]:
    """The labelled third (the pool's first ``plan.labelled`` tiles) and the tiles the
    students see without masks (the pool's others, then ``extra``)."""
    labelled = pool.subset(range(plan.labelled))
    unlabelled = pool.subset(range(plan.labelled, len(pool)))
    if extra is not None and len(extra):
        unlabelled = Tiles(
            np.concatenate([unlabelled.inputs, extra.inputs]),
            np.concatenate([unlabelled.labels, extra.labels]),  # for scoring pseudo-labels only
        )
    return labelled, unlabelled


def draw_shares(labelled: int, unlabelled: int, share: float) -> np.ndarray:
    """Each tile's probability of being drawn (the labelled tiles first) so that ``share`` of
    the draws are labelled tiles, each labelled tile alike, each unlabelled tile alike."""
    if labelled < 1 or unlabelled < 1:
        raise ValueError(f"need labelled and unlabelled tiles, got {labelled}, {unlabelled}")
    return np.concatenate(
        [np.full(labelled, share / labelled), np.full(unlabelled, (1 - share) / unlabelled)]
    )


@dataclass
class Students:
    """The students of one run and the pseudo-labels they were fitted on."""

    nets: dict[str, SegNet]
    counts: dict[str, int]  # pseudo-instances kept and dropped, per student


FitFn = Callable[..., SegNet]  # (name, data, settings, seed, start=) -> a fitted SegNet


def timed_fit(say: Progress, seconds: dict[str, float]) -> FitFn:
    """A :data:`FitFn` that shows each row's steps through ``say`` and notes its wall
    seconds in ``seconds`` under the row's name."""

    def fit(name: str, data: TrainData, settings: FitSettings, seed: int, start=None) -> SegNet:
        started = time.perf_counter()
        done = [0]

        def step(n: int, loss: float) -> None:
            done[0] += n
            say(f"{name} loss {loss:.3f}", done[0], settings.steps)

        net = fit_segnet(data, settings, seed=seed, start=start, progress=step)
        seconds[name] = round(time.perf_counter() - started, 1)
        return net

    return fit


def fit_students(
    plan: Plan,
    labelled: Tiles,
    unlabelled: Tiles,
    teacher: SegNet,
    quality: QualityNet,
    fit: FitFn,
) -> tuple[PseudoSet, Students]:
    """The teacher's pseudo-labels on ``unlabelled`` (scored once, shared by every student)
    and the students fitted from the teacher on them plus ``labelled``: all three with
    ``plan.rows == "all"``, else the served one."""
    pseudo = pseudo_label(teacher, quality, unlabelled, flips=plan.flips)
    supervised = _supervised(labelled)
    second = replace(plan.fit, steps=plan.student_steps, lr=plan.student_lr)
    soft = np.clip(np.round(pseudo.maps * 255.0), 0, 255).astype(np.uint8)
    rows = (
        ("self_training", None, 0.0),
        ("self_training_quality", plan.quality_threshold, 0.0),
        (SERVED_ROW, plan.quality_threshold, plan.kd_weight),
    )
    nets: dict[str, SegNet] = {}
    counts: dict[str, int] = {}
    for name, threshold, kd in rows if plan.rows == "all" else rows[-1:]:
        fg, ct, wt, kept, dropped = pseudo_targets(pseudo, threshold)
        counts[f"{name}_pseudo_kept"] = kept
        counts[f"{name}_pseudo_dropped"] = dropped
        pseudo_data = TrainData(unlabelled.inputs, fg, ct, wt, soft, np.ones(len(unlabelled), bool))
        data = _join(supervised, pseudo_data)
        if plan.labelled_share is not None:
            data.draw = draw_shares(len(labelled), len(unlabelled), plan.labelled_share)
        nets[name] = fit(name, data, replace(second, kd_weight=kd), plan.seed, start=teacher)
    return pseudo, Students(nets, counts)


def run(
    plan: Plan, pool: Tiles, extra: Tiles | None = None, progress: Progress | None = None
) -> Result:
    """Fit every row of the ablation on ``pool`` (its first ``plan.labelled`` tiles are the
    labelled third) and the never-labelled ``extra`` tiles; with ``plan.rows == "served"``
    only the served student's path (teacher, quality network, distilled student), with
    ``"served+third"`` that path and "supervised, 1/3"."""
    torch.set_num_threads(1)  # on a shared CPU more threads only spin against each other
    say = progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    labelled, unlabelled = split_pool(plan, pool, extra)
    nets: dict[str, SegNet] = {}
    fit = timed_fit(say, seconds)

    # Every row trains in two stages of the same length, so none gets more steps: stage 1
    # from scratch, stage 2 from stage 1 at the student learning rate (on the same labelled
    # data for the supervised rows, with the pseudo-labelled tiles for the students).
    second = replace(plan.fit, steps=plan.student_steps, lr=plan.student_lr)
    teacher = fit("teacher", _supervised(labelled), plan.fit, plan.seed)
    if plan.rows != "served":
        nets["supervised_third"] = fit(
            "supervised_third", _supervised(labelled), second, plan.seed, start=teacher
        )
    if plan.rows == "all":
        first_all = fit("supervised_all_stage1", _supervised(pool), plan.fit, plan.seed)
        nets["supervised_all"] = fit(
            "supervised_all", _supervised(pool), second, plan.seed, start=first_all
        )

    started = time.perf_counter()
    folds = np.array_split(np.arange(plan.labelled), plan.folds)
    sets = []
    for k, held in enumerate(folds):
        rest = np.setdiff1d(np.arange(plan.labelled), held)
        fold_fit = replace(plan.fit, steps=max(1, plan.fit.steps // 2))
        net = fit(f"fold_{k}", _supervised(labelled.subset(rest)), fold_fit, plan.seed + 1 + k)
        sets.append(quality_set(net, labelled.subset(held)))  # held out: a teacher's errors
        sets.append(quality_set(net, labelled.subset(rest)))  # seen: its good masks
    windows, iou = (np.concatenate([s[j] for s in sets]) for j in range(2))
    counts["quality_training_instances"] = len(iou)

    def q_step(n: int, loss: float, done=[0]) -> None:  # noqa: B006 - a step counter
        done[0] += n
        say(f"quality loss {loss:.3f}", done[0], plan.quality_steps)

    quality = fit_quality(windows, iou, steps=plan.quality_steps, seed=plan.seed, progress=q_step)
    seconds["quality"] = round(time.perf_counter() - started, 1)

    pseudo, students = fit_students(plan, labelled, unlabelled, teacher, quality, fit)
    nets.update(students.nets)
    counts.update(students.counts)
    return Result(nets, teacher, quality, pseudo, seconds, counts)


__all__ = [
    "QUICK",
    "ROWS",
    "ROW_SETS",
    "SERVED_ROW",
    "Plan",
    "PseudoSet",
    "Result",
    "Students",
    "draw_shares",
    "fit_students",
    "pseudo_label",
    "pseudo_targets",
    "quality_set",
    "run",
    "split_pool",
    "timed_fit",
]
