"""Fitting the plankton classifier to a user's data: the options, and transfer from a backbone.

:class:`FitParams` holds the schedule ``seawatch train plankton`` asks for; :func:`fit_transfer`
starts from a backbone with a schedule sized to the data (``target_steps`` optimiser steps,
:func:`~seawatch.models.plankton.finetune.schedule_for`), tries the fine-tuning modes and keeps
the best on validation (or on the mean of K folds for a small set), then learns from
unlabelled crops when given. :mod:`.train` calls it, calibrates, exports and evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.progress import Progress

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.backbone import backbone_card
from seawatch.models.plankton.balance import Balance
from seawatch.models.plankton.crossval import cross_validate
from seawatch.models.plankton.datasets import LabelledSet
from seawatch.models.plankton.finetune import (
    MODES,
    TARGET_STEPS,
    new_model,
    predict_logits,
    schedule_for,
    train_mode,
    transfer,
)
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.selftrain import SelfTrainParams
from seawatch.models.plankton.splits import PlanktonData, Splits
from seawatch.models.plankton.unlabelled import UnlabelledMethod, learn_from_unlabelled
from seawatch.models.plankton.views_choice import ViewsChoice
from seawatch.models.training import log_line


@dataclass(frozen=True, slots=True)
class FitParams:
    """The optimisation schedule."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 4e-3
    balance: Balance = "sampler"
    finetune: Literal["auto", "linear", "last", "full"] = "auto"
    adaptive: bool = True  # a user's data: schedule from its size (explicit values win)
    unlabelled_method: UnlabelledMethod = "self-training"  # what --unlabelled-dir does
    self_training: SelfTrainParams | None = None  # its rounds and thresholds (None: defaults)
    target_steps: int = TARGET_STEPS  # a user's data: the optimiser steps the schedule aims at
    views: ViewsChoice = 1  # dihedral views the exported graph averages (see .views_choice)


@dataclass
class Fitted:
    """A trained model, its history, how it was tuned, and the held-out logits that fit
    its calibration (validation, or out-of-fold under cross-validation)."""

    model: PlanktonNet
    history: list
    tuning: dict[str, object] | None
    held_logits: np.ndarray
    held: LabelledSet
    cross_validation: dict[str, object] | None = None
    backbone: dict[str, object] | None = None


def fit_transfer(
    splits: Splits,
    params: FitParams,
    pretrained: Path | None,
    seed: int,
    device: str,
    progress: Progress,
    unlabelled: np.ndarray | None = None,
) -> Fitted:
    """A user's data: schedule from its size, modes tried from the start and chosen on
    validation macro-F1 (see :mod:`.finetune`), or on the mean macro-F1 of K folds for a
    small set (see :mod:`.crossval`; the kept mode is then trained on every image); with
    unlabelled crops, then consistency training or self-training (see :mod:`.unlabelled`),
    kept if it wins on validation."""
    train = splits.train
    schedule = schedule_for(
        len(train),
        epochs=None if params.adaptive else params.epochs,
        batch=None if params.adaptive else params.batch_size,
        target_steps=params.target_steps,
    )
    modes = MODES if params.finetune == "auto" else (params.finetune,)
    chosen = "mean macro-F1 of the folds" if splits.folds else "validation macro-F1"
    tuning: dict[str, object] = {
        "start": str(pretrained) if pretrained else "scratch (random init)",
        "schedule": {
            "epochs": schedule.epochs,
            "batch_size": schedule.batch_size,
            "lr": schedule.lr,
        },
        "rule": (
            f"batch ~ n/8 in 16..128, epochs for ~{params.target_steps} steps in 10..300; "
            f"mode by {chosen}"
        ),
    }
    if splits.folds and unlabelled is not None:
        msg = (
            "--unlabelled-dir needs a validation split to keep or refuse the self-trained "
            f"model, and this set is cross-validated ({splits.folds} folds): give --val-dir, "
            "or --folds 0"
        )
        raise ConfigError(msg)
    if splits.folds:
        tried = len(modes) if pretrained else 1
        task = progress.add_task("cross-validation", total=tried * splits.folds + 1, info="")
        cv = cross_validate(
            train.images,
            train.labels,
            train.class_names,
            folds=splits.folds,
            start=pretrained,
            schedule=schedule,
            modes=modes,
            seed=seed,
            device=device,
            advance=lambda info: progress.update(task, advance=1, info=info),
        )
        torch.manual_seed(seed)
        model, _ = new_model(len(train.class_names), train.images, pretrained)
        train_mode(
            model,
            train.images,
            train.labels,
            cv.mode,
            schedule,
            seed=seed,
            device=device,
            pretrained=pretrained is not None,
        )
        progress.update(task, advance=1, info=f"final model: {cv.mode} on all {len(train)}")
        summary = cv.summary(train.class_names)
        spread = f"{summary['macro_f1_mean']} +- {summary['macro_f1_std']}"
        log_line(progress, f"cross-validation macro-F1 {spread}")
        tuning |= {"mode": cv.mode, "cross_validation_macro_f1_by_mode": cv.mean_by_mode}
        backbone = backbone_card(pretrained) if pretrained else None
        return Fitted(model.to(device), [], tuning, cv.oof_logits, train, summary, backbone)
    validation = splits.sets["validation"]
    done = transfer(
        (train.images, train.labels),
        (validation.images, validation.labels),
        len(train.class_names),
        start=pretrained,
        modes=modes,
        seed=seed,
        device=device,
        schedule=schedule,
    )
    tuning |= {"mode": done.mode, "validation_macro_f1_by_mode": done.validation_f1}
    model = done.model.to(device)
    if unlabelled is not None:
        key = "self_training" if params.unlabelled_method == "self-training" else "consistency"
        model, tuning[key] = learn_from_unlabelled(
            model,
            done.validation_f1[done.mode],
            (train.images, train.labels),
            unlabelled,
            (validation.images, validation.labels),
            method=params.unlabelled_method,
            start=pretrained,
            mode=done.mode,
            schedule=schedule,
            seed=seed,
            device=device,
            self_training=params.self_training,
        )
        model = model.to(device)
    logits = predict_logits(model, validation.images, device)
    backbone = backbone_card(pretrained) if pretrained else None
    return Fitted(model, [], tuning, logits, validation, backbone=backbone)


def unlabelled_crops_for(data: PlanktonData, train: LabelledSet) -> np.ndarray | None:
    """The crops under ``data.unlabelled_dir``, prepared like the labelled ones (None: none)."""
    if data.unlabelled_dir is None:
        return None
    if train.channels != 1:
        msg = (
            "--unlabelled-dir reads gray crops and this model takes colour; self-training of "
            "colour models is not built yet: leave out --unlabelled-dir or give --colour gray"
        )
        raise ConfigError(msg)
    from seawatch.models.plankton.ssl_command import unlabelled_crops

    size = int(train.images.shape[1])
    return unlabelled_crops(data.unlabelled_dir, size=size, option="--unlabelled-dir")[0]


__all__ = ["FitParams", "Fitted", "fit_transfer", "predict_logits", "unlabelled_crops_for"]
