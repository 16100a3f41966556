"""Self-training on unlabelled crops: a fine-tuned teacher pseudo-labels them, a student learns.

With a few labels per class and a folder of unlabelled crops from the same instrument (the
crops SimCLR pretrained on, or simply the objects the daemon segmented), the cheapest large
gain is to let the fine-tuned model label the unlabelled crops it is sure of and train again
on labels + pseudo-labels (self-training / "noisy student", Xie et al., CVPR 2020; FixMatch's
confidence threshold, Sohn et al., NeurIPS 2020):

- the teacher labels each unlabelled crop with its softmax averaged over the eight dihedral
  views (four right-angle rotations, each flipped): plankton has no up or down, so the
  average is a steadier vote than one view;
- a crop is kept if the averaged confidence reaches ``threshold``; per class at most ``cap``
  crops, the most confident first, so a class the teacher over-predicts does not swamp the
  others;
- optionally the threshold is class-adaptive (``min_threshold``; FlexMatch, Zhang et al.,
  NeurIPS 2021): class c's threshold is ``threshold`` scaled by how many crops c passes at
  ``threshold`` against the class that passes most, never below ``min_threshold``, so a
  class the teacher is unsure of (faint fibres, chaetognaths) is not starved;
- the student starts again from the same backbone and mode as the teacher (not from the
  teacher: its mistakes would only be confirmed) and trains, under the usual augmentation,
  on the labelled crops and the kept pseudo-labelled ones; the student can teach the next
  round.

:func:`keep_better` keeps a student only if it beats the teacher on validation; with several
rounds, each student teaches the next and the best on validation (teacher included) is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from seawatch.models.plankton.finetune import (
    Mode,
    Schedule,
    macro_f1,
    new_model,
    predict,
    schedule_for,
    train_mode,
)
from seawatch.models.plankton.network import PlanktonNet, dihedral_views, view_mean


@dataclass(frozen=True, slots=True)
class SelfTrainParams:
    """How pseudo-labels are chosen and how many rounds run."""

    threshold: float = 0.8  # averaged softmax a pseudo-label needs
    cap: int = 400  # most pseudo-labels per class
    rounds: int = 1
    min_threshold: float | None = None  # class-adaptive thresholds down to this (None: fixed)
    student_epochs: int | None = None  # passes over labels + pseudo-labels (None: teacher's)
    student_average: float | None = None  # the student ends on its weights' EMA at this decay

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            msg = f"self-training threshold must be in (0, 1), got {self.threshold}"
            raise ValueError(msg)
        if self.cap < 1 or self.rounds < 1:
            msg = f"self-training cap and rounds must be >= 1, got {self.cap}, {self.rounds}"
            raise ValueError(msg)
        if self.student_epochs is not None and self.student_epochs < 1:
            msg = f"self-training student_epochs must be >= 1, got {self.student_epochs}"
            raise ValueError(msg)
        if self.student_average is not None and not 0.0 < self.student_average < 1.0:
            msg = f"self-training student_average must be in (0, 1), got {self.student_average}"
            raise ValueError(msg)
        if self.min_threshold is not None and not 0.0 < self.min_threshold <= self.threshold:
            msg = (
                f"self-training min_threshold must be in (0, threshold={self.threshold}], "
                f"got {self.min_threshold}"
            )
            raise ValueError(msg)

    def describe(self) -> str:
        """One line for the card."""
        threshold = (
            f"threshold {self.threshold}"
            if self.min_threshold is None
            else f"class-adaptive threshold {self.threshold} down to {self.min_threshold}"
        )
        student = "" if self.student_epochs is None else f", student {self.student_epochs} epochs"
        if self.student_average is not None:
            student += f", student weights averaged (EMA {self.student_average})"
        return (
            f"self-training: 8-view averaged teacher, {threshold}, "
            f"at most {self.cap} pseudo-labels per class, {self.rounds} round(s){student}"
        )


def student_schedule(schedule: Schedule, epochs: int | None = None) -> Schedule:
    """The student's schedule: the teacher's batch and rate for ``epochs`` passes over its
    labels + pseudo-labels (None: the teacher's epochs). An epoch is a pass over the set the
    model trains on, so with the teacher's epochs a student whose set is 6x the teacher's
    gets 6x its optimiser steps; ``epochs`` sets that length explicitly."""
    if epochs is None:
        return schedule
    if epochs < 1:
        msg = f"student epochs must be >= 1, got {epochs}"
        raise ValueError(msg)
    return replace(schedule, epochs=epochs)


def optimiser_steps(schedule: Schedule, n_images: int) -> int:
    """Optimiser steps ``train_mode`` takes with ``schedule`` on ``n_images`` images."""
    return schedule.epochs * math.ceil(n_images / schedule.batch_size)


def dihedral_probabilities(
    model: PlanktonNet, images: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """Softmax (N x C) averaged over the 8 rotations/flips of each prepared crop."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 32):  # 32 crops, 256 views a pass
            xb = torch.from_numpy(images[i : i + 32, None]).float().to(device)
            probs = torch.softmax(model.logits(dihedral_views(xb, 8)), 1)
            out.append(view_mean(probs, 8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def class_thresholds(
    probabilities: np.ndarray, threshold: float, min_threshold: float | None = None
) -> np.ndarray:
    """Per-class confidence thresholds: ``threshold`` for every class, or (``min_threshold``
    given) FlexMatch's linear scaling, ``threshold`` x (crops class c passes at ``threshold``)
    / (crops the most-passing class passes), clipped below at ``min_threshold``."""
    n_classes = probabilities.shape[1]
    if min_threshold is None:
        return np.full(n_classes, threshold)
    labels = probabilities.argmax(1)
    passed = np.bincount(labels[probabilities.max(1) >= threshold], minlength=n_classes)
    learnt = passed / max(int(passed.max()), 1)
    return np.maximum(min_threshold, threshold * learnt)


def pick_pseudo_labels(
    probabilities: np.ndarray, threshold: float | np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and labels of the crops kept: confidence >= ``threshold`` (one number, or one
    per class), per class the ``cap`` most confident."""
    labels = probabilities.argmax(1)
    confidence = probabilities.max(1)
    per_class = np.broadcast_to(np.asarray(threshold, float), (probabilities.shape[1],))
    keep = []
    for c in range(probabilities.shape[1]):
        sure = np.flatnonzero((labels == c) & (confidence >= per_class[c]))
        keep.append(sure[np.argsort(-confidence[sure], kind="stable")][:cap])
    chosen = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return chosen, labels[chosen]


@dataclass
class SelfTrained:
    """The last student, every round's student and what each round did."""

    model: PlanktonNet
    rounds: list[dict[str, object]]
    students: list[PlanktonNet]


def self_train(
    teacher: PlanktonNet,
    train: tuple[np.ndarray, np.ndarray],
    unlabelled: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    start: Path | None,
    mode: Mode,
    params: SelfTrainParams | None = None,
    seed: int = 0,
    device: str = "cpu",
    schedule: Schedule | None = None,
) -> SelfTrained:
    """Run ``params.rounds`` rounds of pseudo-labelling ``unlabelled`` and retraining from
    ``start`` in ``mode``; report each round's pseudo-label count, the student's epochs and
    optimiser steps, and validation macro-F1. ``schedule`` (None: sized to labels +
    pseudo-labels) is the student's, its epochs replaced by ``params.student_epochs`` if set
    (:func:`student_schedule`)."""
    params = params or SelfTrainParams()
    n_classes = teacher.num_classes
    if unlabelled.ndim != 3 or unlabelled.shape[1:] != train[0].shape[1:]:
        msg = (
            f"unlabelled crops have shape {unlabelled.shape[1:]}, the labelled ones "
            f"{train[0].shape[1:]}: prepare both the same way"
        )
        raise ValueError(msg)
    rounds: list[dict[str, object]] = []
    students: list[PlanktonNet] = []
    model = teacher
    for r in range(params.rounds):
        probabilities = dihedral_probabilities(model, unlabelled, device)
        thresholds = class_thresholds(probabilities, params.threshold, params.min_threshold)
        chosen, pseudo = pick_pseudo_labels(probabilities, thresholds, params.cap)
        images = np.concatenate([train[0], unlabelled[chosen]])
        labels = np.concatenate([train[1], pseudo]).astype(train[1].dtype)
        torch.manual_seed(seed + r + 1)
        model, _ = new_model(n_classes, images, start)
        student = student_schedule(schedule or schedule_for(len(labels)), params.student_epochs)
        train_mode(
            model,
            images,
            labels,
            mode,
            student,
            seed=seed + r + 1,
            device=device,
            pretrained=start is not None,
            average=params.student_average,
        )
        f1 = macro_f1(validation[1], predict(model, validation[0], device), n_classes)
        rounds.append(
            {
                "pseudo_labels": len(chosen),
                "per_class": np.bincount(pseudo, minlength=n_classes).tolist(),
                "thresholds": np.round(thresholds, 3).tolist(),
                "student_epochs": student.epochs,
                "student_steps": optimiser_steps(student, len(labels)),
                "validation_macro_f1": round(f1, 4),
            }
        )
        students.append(model)
    return SelfTrained(model, rounds, students)


def keep_better(
    teacher: PlanktonNet,
    teacher_f1: float,
    train: tuple[np.ndarray, np.ndarray],
    unlabelled: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    start: Path | None,
    mode: Mode,
    params: SelfTrainParams | None = None,
    seed: int = 0,
    device: str = "cpu",
    schedule: Schedule | None = None,
) -> tuple[PlanktonNet, dict[str, object]]:
    """Self-train from ``teacher`` and keep the student of the round with the best validation
    macro-F1 if it beats ``teacher_f1`` (else the teacher); return the kept model and a
    summary for the card (``kept``: "teacher", "student", or "student of round N" when
    several rounds ran)."""
    params = params or SelfTrainParams()
    done = self_train(
        teacher,
        train,
        unlabelled,
        validation,
        start=start,
        mode=mode,
        params=params,
        seed=seed,
        device=device,
        schedule=schedule,
    )
    return keep_best(teacher, teacher_f1, done, params, len(unlabelled))


def keep_best(
    teacher: PlanktonNet,
    teacher_f1: float,
    done: SelfTrained,
    params: SelfTrainParams,
    unlabelled_crops: int,
    rounds: int | None = None,
) -> tuple[PlanktonNet, dict[str, object]]:
    """Of ``teacher`` and the students of the first ``rounds`` rounds of ``done`` (None: all),
    the best on validation (a student only if it beats ``teacher_f1``), and the card's
    summary. ``rounds`` lets one run of N rounds answer for 1..N (the benchmark)."""
    rounds = rounds or len(done.rounds)
    f1s = [float(r["validation_macro_f1"]) for r in done.rounds[:rounds]]  # type: ignore[arg-type]
    best = int(np.argmax(f1s))  # the first of equal scores: fewer rounds
    won = f1s[best] > teacher_f1
    kept = "teacher"
    if won:
        kept = "student" if rounds == 1 else f"student of round {best + 1}"
    summary = {
        "method": replace(params, rounds=rounds).describe(),
        "unlabelled_crops": unlabelled_crops,
        "teacher_validation_macro_f1": round(teacher_f1, 4),
        "rounds": done.rounds[:rounds],
        "kept": kept,
    }
    return (done.students[best] if won else teacher), summary


__all__ = [
    "SelfTrainParams",
    "SelfTrained",
    "class_thresholds",
    "dihedral_probabilities",
    "keep_best",
    "keep_better",
    "optimiser_steps",
    "pick_pseudo_labels",
    "self_train",
    "student_schedule",
]
