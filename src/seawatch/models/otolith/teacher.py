"""The teacher: pretrained to localise generic corruptions at three resolutions, or loaded.

No ImageNet weights can be downloaded here, so the teacher is pretrained inside the project
on a synthetic auxiliary task: normal otoliths are altered by *generic* local corruptions
(:mod:`.corruptions`: foreign textures, pasted pieces, smoothing, colour casts, cut edges,
strokes, spots, local defocus) and each stage (1/2, 1/4, 1/8 of the stem's output) predicts,
through a 1x1 convolution, where the image was altered (an area-balanced loss, so a
two-pixel spot counts as much as a large region). Its features thus respond to local
irregularity, which a student trained on normal otoliths alone never sees and cannot
reproduce; that is what makes the discrepancy an anomaly score. The corruptions know nothing
of the defect generator the detector is evaluated on (:mod:`._defects`). A ``state_dict``
saved from :class:`FeatureNet` (e.g. ``teacher.pt`` of an artifact) can be loaded instead
with :func:`load_teacher`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from seawatch.contracts.errors import ConfigError
from seawatch.models.otolith.corruptions import (
    HARD_NEGATIVE_SHARE,
    corrupt_batch,
    localisation_loss,
)
from seawatch.models.otolith.network import FeatureNet
from seawatch.models.otolith.plan import Plan
from seawatch.models.training import log_line, optimise

TEACHER_FILE = "teacher.pt"
TASK = (
    "pretrained here to localise generic synthetic corruptions (foreign texture, pasted piece, "
    "smoothing, colour cast, cut edge, strokes, spots, local defocus; seawatch.models.otolith."
    "corruptions) at 1/2, 1/4 and 1/8 resolution, on normal otoliths only; the last epochs "
    "with hard negatives (the hardest 1 % of unaltered pixels count again) and cuts through "
    "the object"
)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same random 90-degree rotation and flip for the whole batch (cheap, exact)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    return x.flip(3) if bool(torch.rand(1, generator=generator) < 0.5) else x


def pretrain_teacher(
    images: np.ndarray,
    textures: np.ndarray,
    *,
    rgb_mean: tuple[float, float, float],
    rgb_std: tuple[float, float, float],
    widths: tuple[int, ...],
    stem_stride: int,
    depth: int = 2,
    epochs: int,
    hard_epochs: int = 0,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    progress: Progress,
) -> tuple[FeatureNet, list[dict[str, float]]]:
    """Pretrain a colour :class:`FeatureNet` on normal ``images`` (N x 3 x S x S uint8 RGB).

    ``textures`` (same layout) are the foreign textures pasted in. Two phases, each with its
    own one-cycle schedule: ``epochs`` of the plain area-balanced loss with cuts anywhere
    (learning rate ``lr``), then ``hard_epochs`` with hard negatives and cuts through the
    object (``lr`` / 3). Hard negatives from the first step left the teacher weaker (its
    student's validation AUROC 0.79, against 0.91 in this order; experiments/otolith/README.md).
    Returns the network (eval mode, frozen) and the loss per epoch.
    """
    torch.manual_seed(seed)
    net = FeatureNet(3, widths, stem_stride, depth).to(device)
    heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in widths[1:]).to(device)
    params = [*net.parameters(), *heads.parameters()]
    batch_size = min(batch_size, len(images))
    mean = torch.tensor(rgb_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(rgb_std, device=device).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    data, foreign = torch.from_numpy(images), torch.from_numpy(textures)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    phases = [(epochs, lr, False), (hard_epochs, lr / 3, True)]
    total_epochs = epochs + hard_epochs
    for phase_epochs, phase_lr, hard in phases:
        if phase_epochs <= 0:
            continue
        optimizer = torch.optim.AdamW(params, lr=phase_lr, weight_decay=1e-4)
        steps = max(1, len(images) // batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=phase_lr, total_steps=phase_epochs * steps, pct_start=0.15
        )
        for _ in range(phase_epochs):
            epoch = len(history) + 1
            label = f"teacher {epoch}/{total_epochs}" + (" (hard negatives)" if hard else "")
            task = progress.add_task(label, total=steps, info="")
            order = torch.randperm(len(data), generator=generator)
            net.train()
            total = 0.0
            for step in range(steps):
                batch = augment(
                    data[order[step * batch_size : (step + 1) * batch_size]].float(), generator
                )
                x, labels = corrupt_batch(batch, rng, foreign, object_cuts=hard)
                x, labels = (x.to(device) / 255.0 - mean) / std, labels.to(device)
                loss = torch.zeros((), device=device)
                for head, feature in zip(heads, net(x), strict=True):
                    target = F.adaptive_avg_pool2d(labels, feature.shape[-2:])
                    share = HARD_NEGATIVE_SHARE if hard else 0.0
                    loss = loss + localisation_loss(head(feature), target, hard_share=share)
                optimise(loss, optimizer, schedule)
                total += float(loss.detach())
                progress.update(task, advance=1, info=f"loss {total / (step + 1):.4f}")
            history.append({"epoch": epoch, "loss": round(total / steps, 5), "hard": hard})
            log_line(
                progress,
                f"teacher_epoch={epoch} hard_negatives={hard} loss={total / steps:.5f} "
                f"seconds={time.perf_counter() - started:.1f}",
            )
    return freeze(net), history


def pretrain_for_plan(
    plan: Plan,
    images: np.ndarray,
    textures: np.ndarray,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    seed: int,
    device: str,
    progress: Progress,
) -> tuple[FeatureNet, list[dict[str, float]]]:
    """:func:`pretrain_teacher` with the architecture and schedule of a training ``plan``."""
    return pretrain_teacher(
        images,
        textures,
        rgb_mean=norm[0],  # type: ignore[arg-type]
        rgb_std=norm[1],  # type: ignore[arg-type]
        widths=plan.widths,
        stem_stride=plan.stem_stride,
        depth=plan.teacher_depth,
        epochs=plan.teacher_epochs,
        hard_epochs=plan.teacher_hard_epochs,
        batch_size=plan.batch_size,
        lr=plan.teacher_lr,
        seed=seed,
        device=device,
        progress=progress,
    )


def freeze(net: FeatureNet) -> FeatureNet:
    """Eval mode and no gradients: the teacher does not change during distillation."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_teacher(
    path: Path, widths: tuple[int, ...], stem_stride: int = 1, depth: int = 2
) -> FeatureNet:
    """A frozen colour :class:`FeatureNet` with the ``state_dict`` saved at ``path``."""
    net = FeatureNet(3, widths, stem_stride, depth)
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (OSError, RuntimeError, KeyError) as exc:
        msg = (
            f"--teacher-weights {path}: not a FeatureNet state_dict with widths {widths}, "
            f"stem stride {stem_stride} and {depth} convolutions per stage "
            f"({exc}); pass a teacher.pt written by `seawatch train otolith`"
        )
        raise ConfigError(msg) from exc
    return freeze(net)


__all__ = [
    "TASK",
    "TEACHER_FILE",
    "augment",
    "freeze",
    "load_teacher",
    "pretrain_for_plan",
    "pretrain_teacher",
]
