"""Consistency training on unlabelled crops (FixMatch-style), after fine-tuning.

Offline self-training (:mod:`.selftrain`) labels the unlabelled crops once, with the
fine-tuned model, and keeps only the ones it is sure of: the classes it is weak on get the
fewest pseudo-labels. Consistency training (FixMatch, Sohn et al., NeurIPS 2020) instead
labels them again at every step, with a model that keeps improving:

- each step draws a balanced labelled batch (usual augmentation, cross-entropy) and
  ``unlabelled_ratio`` times as many unlabelled crops;
- an EMA of the student (mean teacher, Tarvainen & Valpola 2017) looks at a *weak* view of
  each unlabelled crop (a right-angle rotation and flip: plankton has no up or down) and
  gives a pseudo-label where its confidence reaches ``threshold``;
- its probabilities are first *aligned* (ReMixMatch's distribution alignment, Berthelot et
  al. 2020): multiplied by uniform / the running mean of its predictions and renormalised,
  so a class the model under-predicts still gets pseudo-labels;
- the student learns that label from a *strong* view of the same crop (the SimCLR views:
  any rotation, scale, heavy blur, contrast, brightness and sensor noise, plus a cut-out);
- it continues from the fine-tuned model, in its mode (the same layers train), and the EMA
  model is the result.

:func:`keep_consistent` keeps the result only if it beats the fine-tuned model on validation.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from seawatch.models.plankton.augment import augment
from seawatch.models.plankton.balance import balanced_indices
from seawatch.models.plankton.datasets import planes
from seawatch.models.plankton.finetune import (
    LABEL_SMOOTHING,
    Mode,
    macro_f1,
    predict,
    trainable_groups,
)
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.ssl import NOISE_SIGMA, VIEW


@dataclass(frozen=True, slots=True)
class ConsistencyParams:
    """The consistency-training schedule."""

    steps: int = 100
    batch_size: int = 64  # labelled crops per step
    unlabelled_ratio: int = 2  # unlabelled crops per labelled one
    threshold: float = 0.8  # aligned EMA confidence a pseudo-label needs
    weight: float = 1.0  # of the unlabelled loss
    ema: float = 0.99
    lr: float = 2e-3
    cutout: float = 0.35  # side of the square cut from each strong view (share of the side)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0 or not 0.0 <= self.ema < 1.0:
            msg = (
                f"consistency threshold must be in (0, 1) and ema in [0, 1), got "
                f"{self.threshold}, {self.ema}"
            )
            raise ValueError(msg)
        if min(self.steps, self.batch_size, self.unlabelled_ratio) < 1:
            msg = (
                "consistency steps, batch_size and unlabelled_ratio must be >= 1, got "
                f"{self.steps}, {self.batch_size}, {self.unlabelled_ratio}"
            )
            raise ValueError(msg)

    def describe(self) -> str:
        """One line for the card."""
        return (
            f"FixMatch-style consistency from the fine-tuned model: {self.steps} steps, "
            f"{self.batch_size} labelled + {self.unlabelled_ratio * self.batch_size} "
            f"unlabelled crops a step, EMA teacher {self.ema} on a weak (dihedral) view, "
            f"distribution alignment, threshold {self.threshold}, strong SimCLR view + "
            f"cut-out {self.cutout}, weight {self.weight}, AdamW lr {self.lr:g} cosine"
        )


def weak_view(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each crop turned by a random multiple of 90 degrees and flipped at random."""
    turns = torch.randint(0, 4, (len(x),), generator=generator)
    flips = torch.rand(len(x), generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(len(x)):
        view = torch.rot90(x[i], int(turns[i]), (1, 2))
        out[i] = view.flip(-1) if flips[i] else view
    return out


def strong_view(x: torch.Tensor, generator: torch.Generator, cutout: float) -> torch.Tensor:
    """The SimCLR view (any rotation, scale, blur, contrast, brightness, noise) and a
    square of side ``cutout`` x the crop's side filled with the crop's mean."""
    out = augment(x, generator, VIEW)
    lo, hi = NOISE_SIGMA
    sigma = lo + (hi - lo) * torch.rand(len(x), 1, 1, 1, generator=generator)
    out = (out + sigma * torch.randn(out.shape, generator=generator)).clamp(0.0, 255.0)
    side = round(cutout * x.shape[-1])
    if side > 0:
        corner = torch.randint(0, x.shape[-1] - side + 1, (len(x), 2), generator=generator)
        fill = out.mean(dim=(1, 2, 3))
        for i in range(len(x)):
            r, c = int(corner[i, 0]), int(corner[i, 1])
            out[i, :, r : r + side, c : c + side] = fill[i]
    return out


def align(probabilities: torch.Tensor, running_mean: torch.Tensor) -> torch.Tensor:
    """Distribution alignment: ``p * (1/C) / running_mean``, renormalised."""
    aligned = probabilities / running_mean.clamp_min(1e-6)
    return aligned / aligned.sum(1, keepdim=True)


@torch.no_grad()
def _update_ema(ema: PlanktonNet, model: PlanktonNet, decay: float) -> None:
    for target, source in zip(ema.parameters(), model.parameters(), strict=True):
        target.mul_(decay).add_(source.detach(), alpha=1.0 - decay)
    for target, source in zip(ema.buffers(), model.buffers(), strict=True):
        target.copy_(source)


def consistency_train(
    model: PlanktonNet,
    train: tuple[np.ndarray, np.ndarray],
    unlabelled: np.ndarray,
    mode: Mode,
    *,
    params: ConsistencyParams | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[PlanktonNet, list[dict[str, float]]]:
    """Continue training a fine-tuned ``model`` (not changed) with FixMatch-style
    consistency on ``unlabelled`` crops; return the EMA model and, per tenth of the steps,
    the mean losses and the share of unlabelled crops that passed the threshold."""
    params = params or ConsistencyParams()
    images, labels = train
    if unlabelled.ndim != 3 or unlabelled.shape[1:] != images.shape[1:]:
        msg = (
            f"unlabelled crops have shape {unlabelled.shape[1:]}, the labelled ones "
            f"{images.shape[1:]}: prepare both the same way (gray crops of one side)"
        )
        raise ValueError(msg)
    if len(unlabelled) == 0:
        raise ValueError("no unlabelled crops: consistency training needs some")
    student = copy.deepcopy(model).to(device)
    ema = copy.deepcopy(model).to(device).eval()
    for parameter in ema.parameters():
        parameter.requires_grad_(False)
    groups, frozen = trainable_groups(student, mode)
    for group in groups:
        group["lr"] = params.lr * group.pop("lr_scale")
    optimizer = torch.optim.AdamW(groups, weight_decay=5e-4)
    total = params.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )
    x, y = torch.from_numpy(planes(images)), torch.from_numpy(labels)
    u = torch.from_numpy(planes(unlabelled))
    n_classes = model.num_classes
    running = torch.full((n_classes,), 1.0 / n_classes, device=device)
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    order = np.zeros(0, np.int64)
    n_u = params.unlabelled_ratio * params.batch_size
    history: list[dict[str, float]] = []
    window: list[tuple[float, float, float]] = []
    for step in range(total):
        if len(order) < params.batch_size:
            order = np.concatenate([order, balanced_indices(labels, rng)])
        idx, order = torch.from_numpy(order[: params.batch_size]), order[params.batch_size :]
        uidx = torch.from_numpy(rng.choice(len(u), size=min(n_u, len(u)), replace=False))
        ub = u[uidx].float()
        with torch.no_grad():
            probabilities = torch.softmax(ema.logits(weak_view(ub, generator).to(device)), 1)
            running = 0.999 * running + 0.001 * probabilities.mean(0)
            confidence, pseudo = align(probabilities, running).max(1)
            mask = (confidence >= params.threshold).float()
        student.train()
        for module in frozen:
            module.eval()  # frozen BatchNorm keeps its statistics
        xb = augment(x[idx].float(), generator)
        sb = strong_view(ub, generator, params.cutout)
        logits = student.logits(torch.cat([xb, sb]).to(device))
        supervised = F.cross_entropy(
            logits[: len(idx)], y[idx].to(device), label_smoothing=LABEL_SMOOTHING
        )
        per_crop = F.cross_entropy(logits[len(idx) :], pseudo, reduction="none")
        unsupervised = (per_crop * mask).mean()
        loss = supervised + params.weight * unsupervised
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        _update_ema(ema, student, params.ema)
        window.append(
            (float(supervised.detach()), float(unsupervised.detach()), float(mask.mean()))
        )
        if len(window) * 10 >= total or step == total - 1:
            mean = np.mean(window, axis=0)
            history.append(
                {
                    "step": step + 1,
                    "supervised": round(float(mean[0]), 4),
                    "unsupervised": round(float(mean[1]), 4),
                    "pseudo_share": round(float(mean[2]), 3),
                }
            )
            window = []
    return ema.cpu().eval(), history


def keep_consistent(
    model: PlanktonNet,
    model_f1: float,
    train: tuple[np.ndarray, np.ndarray],
    unlabelled: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    mode: Mode,
    params: ConsistencyParams | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[PlanktonNet, dict[str, object]]:
    """Consistency-train from the fine-tuned ``model`` and keep the result only if its
    validation macro-F1 beats ``model_f1``; return the kept model and a summary for the
    card."""
    params = params or ConsistencyParams()
    trained, history = consistency_train(
        model, train, unlabelled, mode, params=params, seed=seed, device=device
    )
    f1 = macro_f1(validation[1], predict(trained, validation[0]), model.num_classes)
    kept = "consistency" if f1 > model_f1 else "fine-tuned"
    summary = {
        "method": params.describe(),
        "unlabelled_crops": len(unlabelled),
        "fine_tuned_validation_macro_f1": round(model_f1, 4),
        "validation_macro_f1": round(f1, 4),
        "history": history,
        "kept": kept,
    }
    return (trained if kept == "consistency" else model), summary


__all__ = [
    "ConsistencyParams",
    "align",
    "consistency_train",
    "keep_consistent",
    "strong_view",
    "weak_view",
]
