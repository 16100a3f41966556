"""Learning from few labels: a schedule that fits the data's size, a pretrained start, and
three fine-tuning modes chosen on validation.

- :func:`schedule_for`: batch size and epochs from the number of training images, so a folder
  of 60 images gets a few hundred optimiser steps (not the 10 steps that batch 128 and 10
  epochs give) and a large set is not over-trained.
- modes: ``linear`` (a linear probe: the backbone frozen, BatchNorm statistics too; only the
  head learns), ``last`` (the last two residual stages and the head), ``full`` (everything;
  the backbone at a tenth of the head's learning rate).
- :func:`transfer` trains the asked modes from one start and keeps the best on validation
  macro-F1 (ties: the simpler mode).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from seawatch.models.plankton.augment import augment
from seawatch.models.plankton.balance import balanced_indices
from seawatch.models.plankton.datasets import planes
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.pretrained import load_backbone
from seawatch.models.plankton.weight_average import WeightAverage

Mode = Literal["linear", "last", "full"]
MODES: tuple[Mode, ...] = ("linear", "last", "full")
TARGET_STEPS = 300  # optimiser steps a small set gets
LABEL_SMOOTHING = 0.05


@dataclass(frozen=True, slots=True)
class Schedule:
    """How long and in what batches to train."""

    epochs: int
    batch_size: int
    lr: float


def schedule_for(
    n_train: int,
    *,
    epochs: int | None = None,
    batch: int | None = None,
    target_steps: int = TARGET_STEPS,
) -> Schedule:
    """Batch ~ n/8 (16..128, a power of two) and epochs for ~``target_steps`` steps
    (10..300 epochs); explicit values win."""
    if n_train < 1:
        msg = f"no training images (n_train={n_train}); check the training folder"
        raise ValueError(msg)
    size = batch or int(np.clip(2 ** round(math.log2(max(n_train / 8, 1))), 16, 128))
    steps = math.ceil(n_train / size)
    if target_steps < 1:
        msg = f"target_steps must be >= 1, got {target_steps}"
        raise ValueError(msg)
    rounds = epochs or int(np.clip(math.ceil(target_steps / steps), 10, 300))
    return Schedule(epochs=rounds, batch_size=size, lr=4e-3)


def trainable_groups(model: PlanktonNet, mode: Mode) -> tuple[list[dict], list[nn.Module]]:
    """Parameter groups to optimise (each with an ``lr_scale``) and the modules kept frozen
    (in eval mode) for ``mode``; the frozen ones get ``requires_grad`` False."""
    head = list(model.head.parameters())
    if mode == "linear":
        frozen = [model.stem, model.stages]
        groups = [{"params": head, "lr_scale": 1.0}]
    elif mode == "last":
        frozen = [model.stem, *list(model.stages)[:-2]]
        tail = [p for block in list(model.stages)[-2:] for p in block.parameters()]
        groups = [{"params": head, "lr_scale": 1.0}, {"params": tail, "lr_scale": 0.3}]
    elif mode == "full":
        frozen = []
        body = [*model.stem.parameters(), *model.stages.parameters()]
        groups = [{"params": head, "lr_scale": 1.0}, {"params": body, "lr_scale": 0.1}]
    else:
        msg = f"fine-tuning mode {mode!r} is not one of {', '.join(MODES)}"
        raise ValueError(msg)
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return groups, frozen


def train_mode(
    model: PlanktonNet,
    images: np.ndarray,
    labels: np.ndarray,
    mode: Mode,
    schedule: Schedule,
    *,
    seed: int,
    device: str = "cpu",
    pretrained: bool = True,
    average: float | None = None,
) -> list[float]:
    """Fine-tune ``model`` in ``mode`` (from scratch: every layer at the full rate); return
    the loss per epoch. ``average``: the model ends with the exponential moving average of
    its weights at that decay (:class:`.weight_average.WeightAverage`), not the last step's."""
    groups, frozen = trainable_groups(model, mode)
    if not pretrained:
        for group in groups:
            group["lr_scale"] = 1.0
    for group in groups:
        group["lr"] = schedule.lr * group.pop("lr_scale")
    optimizer = torch.optim.AdamW(groups, weight_decay=5e-4)
    x, y = torch.from_numpy(planes(images)), torch.from_numpy(labels)
    steps = math.ceil(len(x) / schedule.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in groups],
        total_steps=max(8, schedule.epochs * steps),
        pct_start=0.2,
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    model.to(device)
    averaged = WeightAverage(model, average) if average is not None else None
    history = []
    for _ in range(schedule.epochs):
        model.train()
        for module in frozen:
            module.eval()  # frozen BatchNorm keeps its pretrained statistics
        order = torch.from_numpy(balanced_indices(labels, rng))
        total = 0.0
        for step in range(steps):
            idx = order[step * schedule.batch_size : (step + 1) * schedule.batch_size]
            xb = augment(x[idx].float(), generator).to(device)
            loss = loss_fn(model.logits(xb), y[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            if averaged is not None:
                averaged.update(model)
            total += float(loss.detach()) * len(idx)
        history.append(round(total / len(x), 4))
    if averaged is not None:
        averaged.copy_to(model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return history


def predict_logits(
    model: PlanktonNet, images: np.ndarray, device: str, batch: int = 256, views: int = 1
) -> np.ndarray:
    """Pre-softmax scores (numpy N x C) for prepared uint8 crops, averaged over ``views``
    dihedral views (:meth:`PlanktonNet.view_logits`)."""
    model.eval()
    out, batch = [], max(1, batch // views)
    with torch.no_grad():
        for i in range(0, len(images), batch):
            xb = torch.from_numpy(planes(images[i : i + batch])).float().to(device)
            out.append(model.view_logits(xb, views).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def predict(
    model: PlanktonNet, images: np.ndarray, device: str = "cpu", views: int = 1
) -> np.ndarray:
    """Class indices of prepared crops (``views``: dihedral views averaged)."""
    return predict_logits(model, images, device, views=views).argmax(1)


def macro_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over ``n_classes`` (a class never predicted nor present counts 0)."""
    scores = []
    for c in range(n_classes):
        tp = float(np.sum((predicted == c) & (truth == c)))
        fp = float(np.sum((predicted == c) & (truth != c)))
        fn = float(np.sum((predicted != c) & (truth == c)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


@dataclass
class Transferred:
    """The chosen model and how each mode did on validation."""

    model: PlanktonNet
    mode: Mode
    validation_f1: dict[str, float]
    schedule: Schedule


def new_model(
    n_classes: int, images: np.ndarray, start: Path | None
) -> tuple[PlanktonNet, dict[str, object] | None]:
    """A network normalised on ``images`` (gray N x S x S, or colour N x S x S x 3: a
    3-channel network), its backbone from ``start`` (None: random)."""
    mean, std = float(images.mean() / 255.0), max(float(images.std() / 255.0), 1e-3)
    model = PlanktonNet(n_classes, mean=mean, std=std, in_channels=3 if images.ndim == 4 else 1)
    return model, (load_backbone(model, start) if start is not None else None)


def transfer(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    *,
    start: Path | None,
    modes: Sequence[Mode] = MODES,
    seed: int = 0,
    device: str = "cpu",
    schedule: Schedule | None = None,
) -> Transferred:
    """Train one model per mode from ``start`` and keep the best on validation macro-F1.

    From scratch (``start`` None) only ``full`` makes sense and is the one mode trained.
    """
    schedule = schedule or schedule_for(len(train[1]))
    modes = ("full",) if start is None else tuple(modes)
    if not modes:
        raise ValueError("transfer needs at least one fine-tuning mode")
    trained: list[tuple[float, Mode, PlanktonNet]] = []
    for mode in modes:
        torch.manual_seed(seed)
        model, _ = new_model(n_classes, train[0], start)
        train_mode(
            model, *train, mode, schedule, seed=seed, device=device, pretrained=start is not None
        )
        f1 = macro_f1(validation[1], predict(model, validation[0], device), n_classes)
        trained.append((f1, mode, model))
    best = max(trained, key=lambda t: t[0])  # the first (simplest) mode wins a tie
    scores = {mode: round(f1, 4) for f1, mode, _ in trained}
    return Transferred(best[2], best[1], scores, schedule)


__all__ = [
    "MODES",
    "Mode",
    "Schedule",
    "Transferred",
    "macro_f1",
    "new_model",
    "predict",
    "predict_logits",
    "schedule_for",
    "train_mode",
    "trainable_groups",
    "transfer",
]
