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
- the student starts again from the same backbone and mode as the teacher (not from the
  teacher: its mistakes would only be confirmed) and trains, under the usual augmentation,
  on the labelled crops and the kept pseudo-labelled ones; the student can teach the next
  round.

:func:`keep_better` keeps the student only if it beats the teacher on validation.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from seawatch.models.plankton.network import PlanktonNet


@dataclass(frozen=True, slots=True)
class SelfTrainParams:
    """How pseudo-labels are chosen and how many rounds run."""

    threshold: float = 0.8  # averaged softmax a pseudo-label needs
    cap: int = 400  # most pseudo-labels per class
    rounds: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            msg = f"self-training threshold must be in (0, 1), got {self.threshold}"
            raise ValueError(msg)
        if self.cap < 1 or self.rounds < 1:
            msg = f"self-training cap and rounds must be >= 1, got {self.cap}, {self.rounds}"
            raise ValueError(msg)

    def describe(self) -> str:
        """One line for the card."""
        return (
            f"self-training: 8-view averaged teacher, threshold {self.threshold}, "
            f"at most {self.cap} pseudo-labels per class, {self.rounds} round(s)"
        )


def dihedral_probabilities(
    model: PlanktonNet, images: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """Softmax (N x C) averaged over the 8 rotations/flips of each prepared crop."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            xb = torch.from_numpy(images[i : i + 256, None]).float().to(device)
            total = torch.zeros(len(xb), model.num_classes, device=device)
            for flipped in (xb, xb.flip(-1)):
                for k in range(4):
                    total += torch.softmax(model.logits(torch.rot90(flipped, k, (2, 3))), 1)
            out.append((total / 8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def pick_pseudo_labels(
    probabilities: np.ndarray, threshold: float, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and labels of the crops kept: confidence >= ``threshold``, per class the
    ``cap`` most confident."""
    labels = probabilities.argmax(1)
    confidence = probabilities.max(1)
    keep = []
    for c in range(probabilities.shape[1]):
        sure = np.flatnonzero((labels == c) & (confidence >= threshold))
        keep.append(sure[np.argsort(-confidence[sure], kind="stable")][:cap])
    chosen = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return chosen, labels[chosen]


@dataclass
class SelfTrained:
    """The last student and what each round did."""

    model: PlanktonNet
    rounds: list[dict[str, object]]


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
    ``start`` in ``mode``; report each round's pseudo-label count and validation macro-F1.
    ``schedule`` (None: sized to labels + pseudo-labels) is the student's."""
    params = params or SelfTrainParams()
    n_classes = teacher.num_classes
    if unlabelled.ndim != 3 or unlabelled.shape[1:] != train[0].shape[1:]:
        msg = (
            f"unlabelled crops have shape {unlabelled.shape[1:]}, the labelled ones "
            f"{train[0].shape[1:]}: prepare both the same way"
        )
        raise ValueError(msg)
    rounds: list[dict[str, object]] = []
    model = teacher
    for r in range(params.rounds):
        probabilities = dihedral_probabilities(model, unlabelled, device)
        chosen, pseudo = pick_pseudo_labels(probabilities, params.threshold, params.cap)
        images = np.concatenate([train[0], unlabelled[chosen]])
        labels = np.concatenate([train[1], pseudo]).astype(train[1].dtype)
        torch.manual_seed(seed + r + 1)
        model, _ = new_model(n_classes, images, start)
        student_schedule = schedule or schedule_for(len(labels))
        train_mode(
            model,
            images,
            labels,
            mode,
            student_schedule,
            seed=seed + r + 1,
            device=device,
            pretrained=start is not None,
        )
        f1 = macro_f1(validation[1], predict(model, validation[0], device), n_classes)
        rounds.append(
            {
                "pseudo_labels": len(chosen),
                "per_class": np.bincount(pseudo, minlength=n_classes).tolist(),
                "validation_macro_f1": round(f1, 4),
            }
        )
    return SelfTrained(model, rounds)


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
    """Self-train from ``teacher`` and keep the student only if its validation macro-F1
    beats ``teacher_f1``; return the kept model and a summary for the card."""
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
    student_f1 = float(done.rounds[-1]["validation_macro_f1"])  # type: ignore[arg-type]
    kept = "student" if student_f1 > teacher_f1 else "teacher"
    summary = {
        "method": params.describe(),
        "unlabelled_crops": len(unlabelled),
        "teacher_validation_macro_f1": round(teacher_f1, 4),
        "rounds": done.rounds,
        "kept": kept,
    }
    return (done.model if kept == "student" else teacher), summary


__all__ = [
    "SelfTrainParams",
    "SelfTrained",
    "dihedral_probabilities",
    "keep_better",
    "pick_pseudo_labels",
    "self_train",
]
