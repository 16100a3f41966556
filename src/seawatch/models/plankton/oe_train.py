"""Train-time outlier exposure: fine-tune the plankton classifier itself on drawn outliers.

The outlier-exposure *scorer* (:mod:`seawatch.contracts.ood_scorer`) learns novelty on top of
features that were trained only to tell the ten taxa apart. Here the network's last stages
and its head are fine-tuned with the drawn outliers of :mod:`.outliers` (organisms of no
taxon, training taxa through corrupted optics) and the outlier-exposure loss of Hendrycks et
al. (2019, ICLR): cross-entropy on the training taxa plus ``weight`` times the
cross-entropy of each outlier's softmax to the uniform distribution, so that the softmax,
the energy and the penultimate features separate novelty themselves. The scorer is then
refitted on the new graph (``seawatch train plankton-ood``).

The outliers are drawn at their own development seeds (:data:`SHAPES_SEED`,
:data:`CORRUPTED_SEED`), not the scorer's, so the scorer is fitted on outliers the network
never saw. Neither the held-out taxa nor the shifted instrument is drawn. BatchNorm keeps
the trained statistics (the network runs in eval mode; only weights move), so the in-
distribution inputs are normalised as before. The temperature and the ``unknown``
threshold are refitted on validation as :mod:`.train` fits them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from seawatch.models.plankton.datasets import planes
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.training import log_line, optimise

SHAPES_SEED, CORRUPTED_SEED = 7_100_600, 7_100_610  # not the scorer's (7_100_400/410)
LABEL_SMOOTHING = 0.05
STAGES = 4


@dataclass(frozen=True)
class OeParams:
    """How the classifier is fine-tuned with outlier exposure."""

    steps: int = 600
    batch: int = 128  # training objects per step (and as many outliers)
    weight: float = 0.5  # the OE loss's weight (Hendrycks et al. use 0.5)
    lr: float = 1e-3
    train_from: int = 2  # the first residual stage that is trained (0..4; 4: the head alone)
    shapes: int = 6000  # drawn organisms of no taxon
    corrupted: int = 4000  # training taxa through corrupted optics
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "batch": self.batch >= 2,
            "weight": self.weight >= 0,
            "lr": self.lr > 0,
            "train_from": 0 <= self.train_from <= STAGES,
            "shapes": self.shapes >= 0,
            "corrupted": self.corrupted >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            name = bad[0]
            msg = (
                f"outlier exposure: {name}={getattr(self, name)!r} is out of range; steps >= 1, "
                f"batch >= 2, weight >= 0, lr > 0, train_from 0..{STAGES}, shapes and "
                "corrupted >= 0"
            )
            raise ValueError(msg)
        if self.weight > 0 and self.shapes + self.corrupted == 0:
            msg = "outlier exposure with weight > 0 needs outliers: set shapes or corrupted > 0"
            raise ValueError(msg)

    def describe(self) -> dict[str, Any]:
        """The parameters as a card field."""
        return asdict(self)


def oe_loss(outlier_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each outlier's softmax to the uniform distribution (mean over the
    batch); zero for an empty batch."""
    if len(outlier_logits) == 0:
        return outlier_logits.sum() * 0.0
    return -torch.log_softmax(outlier_logits, dim=1).mean(1).mean()


def set_trainable(net: PlanktonNet, train_from: int) -> list[torch.nn.Parameter]:
    """Freeze the stem and the stages before ``train_from``; return the trained parameters
    (the later stages and the head)."""
    for p in net.parameters():
        p.requires_grad_(False)
    trained = [*net.stages[train_from:].parameters(), *net.head.parameters()]
    for p in trained:
        p.requires_grad_(True)
    return trained


def _prefix(net: PlanktonNet, train_from: int, images: np.ndarray) -> torch.Tensor:
    """The frozen part's output (normalisation, stem, stages before ``train_from``) for
    prepared crops, computed once (float16 to halve the memory)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = torch.from_numpy(planes(images[i : i + 256])).float()
            x = (x * (1.0 / 255.0) - net.mean) / net.std
            out.append(net.stages[:train_from](net.stem(x)).half())
    return torch.cat(out)


def _suffix(net: PlanktonNet, train_from: int, x: torch.Tensor) -> torch.Tensor:
    """Logits from the frozen part's output: the trained stages, pooling and the head."""
    return net.head(torch.flatten(net.pool(net.stages[train_from:](x.float())), 1))


def finetune_oe(
    net: PlanktonNet,
    images: np.ndarray,
    labels: np.ndarray,
    outliers: np.ndarray,
    params: OeParams,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Fine-tune ``net`` in place: class-balanced batches of ``images`` (uint8 N x S x S or
    N x C x S x S) with their ``labels``, each with as many random ``outliers``. The frozen
    part (stem and the stages before ``train_from``) runs once over every crop and is
    cached, so a step costs the trained stages alone; no augmentation (the cache is of the
    crops as drawn). Returns the loss history (every 50 steps and the last)."""
    if len(images) != len(labels) or len(images) == 0:
        msg = f"outlier exposure needs labelled images: {len(images)} images, {len(labels)} labels"
        raise ValueError(msg)
    net.eval()  # BatchNorm keeps its statistics; dropout off
    trained = set_trainable(net, params.train_from)
    x = _prefix(net, params.train_from, images)
    y = torch.from_numpy(np.asarray(labels, np.int64))
    use_outliers = len(outliers) > 0 and params.weight > 0
    out = _prefix(net, params.train_from, outliers) if use_outliers else None
    optimizer = torch.optim.AdamW(trained, lr=params.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=max(8, params.steps), pct_start=0.2
    )
    ce = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    rng = np.random.default_rng(params.seed)
    classes = np.unique(labels)
    by_class = [np.nonzero(labels == c)[0] for c in classes]
    task = progress.add_task("outlier exposure", total=params.steps, info="") if progress else None
    history, started, run_ce, run_oe = [], time.perf_counter(), 0.0, 0.0
    for step in range(1, params.steps + 1):
        picks = rng.integers(len(classes), size=params.batch)
        idx = torch.from_numpy(np.array([rng.choice(by_class[c]) for c in picks]))
        loss_in = ce(_suffix(net, params.train_from, x[idx]), y[idx])
        loss = loss_in
        if out is not None:
            oidx = torch.from_numpy(rng.integers(len(out), size=params.batch))
            loss_out = oe_loss(_suffix(net, params.train_from, out[oidx]))
            loss = loss_in + params.weight * loss_out
            run_oe += float(loss_out.detach())
        run_ce += float(loss_in.detach())
        optimise(loss, optimizer, schedule)
        if step % 50 == 0 or step == params.steps:
            n = 50 if step % 50 == 0 else step % 50
            row = {"step": step, "ce": round(run_ce / n, 4), "oe": round(run_oe / n, 4)}
            history.append(row)
            run_ce = run_oe = 0.0
            if progress is not None and task is not None:
                progress.update(task, completed=step, info=f"ce {row['ce']:.3f} oe {row['oe']:.3f}")
                log_line(progress, f"{row} seconds={time.perf_counter() - started:.1f}")
    for p in net.parameters():
        p.requires_grad_(True)
    return history


__all__ = [
    "CORRUPTED_SEED",
    "SHAPES_SEED",
    "OeParams",
    "finetune_oe",
    "oe_loss",
    "set_trainable",
]
