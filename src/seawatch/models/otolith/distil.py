"""Distillation of the student on normal otoliths, and the per-stage calibration of its map.

Torch only here; the metrics come from :mod:`.evaluate` (numpy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from rich.progress import Progress

from seawatch.models.otolith.evaluate import auroc
from seawatch.models.otolith.network import STAGES, OtolithMKD, discrepancy_maps, mkd_loss
from seawatch.models.otolith.teacher import augment
from seawatch.models.training import log_line, optimise

TOP_K_CHOICES: tuple[int, ...] = (1, 16, 64, 256)  # image score: max or mean of the top k


def _batches(images: np.ndarray, batch: int, device: str) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch):
        yield torch.from_numpy(images[start : start + batch]).float().to(device)


@torch.no_grad()
def set_feature_scales(model: OtolithMKD, images: np.ndarray, device: str) -> None:
    """Scale each teacher channel to unit standard deviation over normal ``images``."""
    model.eval()
    sums = [torch.zeros(c, dtype=torch.float64) for c in model.teacher.widths[1:]]
    squares = [torch.zeros_like(s) for s in sums]
    count = [0] * STAGES
    for x in _batches(images, 32, device):
        x = (x * (1.0 / 255.0) - model.rgb_mean) / model.rgb_std
        for k, f in enumerate(model.teacher(x)):
            f = f.double().cpu()
            sums[k] += f.sum((0, 2, 3))
            squares[k] += f.pow(2).sum((0, 2, 3))
            count[k] += f.shape[0] * f.shape[2] * f.shape[3]
    for k in range(STAGES):
        var = squares[k] / count[k] - (sums[k] / count[k]) ** 2
        std = var.clamp(min=0).sqrt().float()
        floor = 0.01 * float(std.median()) + 1e-6  # dead channels stay ~0 after scaling
        getattr(model, f"feature_scale{k}").copy_((1.0 / std.clamp(min=floor)).view(1, -1, 1, 1))


def distil(
    model: OtolithMKD,
    train: np.ndarray,
    val: np.ndarray,
    val_labels: np.ndarray | None,
    *,
    label: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    progress: Progress,
) -> list[dict[str, float]]:
    """Train ``model.student`` to reproduce the frozen teacher on normal ``train`` images.

    ``train`` and ``val`` are N x 3 x S x S uint8 RGB. After each epoch the stage norms and
    the validation AUROC (max of the map) are measured; with ``val_labels`` None (normal
    ``val`` only: a user's specimens) the validation distillation loss instead. Returns the
    per-epoch history.
    """
    torch.manual_seed(seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.student.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, len(train) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(1, epochs * steps), pct_start=0.15
    )
    generator = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(train)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        task = progress.add_task(f"{label} {epoch}/{epochs}", total=steps, info="")
        model.student.train()
        order = torch.randperm(len(data), generator=generator)
        total = 0.0
        for step in range(steps):
            batch = data[order[step * batch_size : (step + 1) * batch_size]]
            x = augment(batch.float(), generator).to(device)
            with torch.no_grad():
                teacher = model.teacher_features(x)
            loss = mkd_loss(teacher, model.student_features(x), model.direction_weight)
            optimise(loss, optimizer, schedule)
            total += float(loss.detach())
            progress.update(task, advance=1, info=f"loss {total / (step + 1):.4f}")
        if val_labels is None:
            name, value = "val_loss", round(validation_loss(model, val, device), 5)
        else:
            name = "val_auroc"
            value = calibrate_map(model, val, val_labels, device, top_k_choices=(1,))[1]["1"]
        history.append({"epoch": epoch, "loss": round(total / steps, 5), name: value})
        progress.update(task, info=f"loss {total / steps:.4f}  {name} {value:.4f}")
        log_line(
            progress,
            f"{label}_epoch={epoch} loss={total / steps:.5f} {name}={value:.4f} "
            f"seconds={time.perf_counter() - started:.1f}",
        )
    model.eval()
    return history


@torch.no_grad()
def validation_loss(model: OtolithMKD, images: np.ndarray, device: str) -> float:
    """The distillation loss on ``images`` (no augmentation), averaged over images."""
    model.eval()
    total, count = 0.0, 0
    for x in _batches(images, 32, device):
        loss = mkd_loss(
            model.teacher_features(x), model.student_features(x), model.direction_weight
        )
        total, count = total + float(loss) * len(x), count + len(x)
    return total / max(1, count)


@torch.no_grad()
def stage_maps(model: OtolithMKD, images: np.ndarray, device: str) -> list[np.ndarray]:
    """Raw per-stage discrepancy maps (each N x H_k x W_k) of uint8 RGB ``images``."""
    model.eval()
    out: list[list[np.ndarray]] = [[] for _ in range(STAGES)]
    for x in _batches(images, 32, device):
        maps = discrepancy_maps(
            model.teacher_features(x), model.student_features(x), model.direction_weight
        )
        for k, m in enumerate(maps):
            out[k].append(m.cpu().numpy())
    return [np.concatenate(parts) for parts in out]


@torch.no_grad()
def heatmaps(model: OtolithMKD, images: np.ndarray, device: str) -> np.ndarray:
    """The model's heat maps (N x h x w) of uint8 RGB ``images``."""
    model.eval()
    return np.concatenate([model.heatmap(x).cpu().numpy() for x in _batches(images, 32, device)])


def calibrate_map(
    model: OtolithMKD,
    val: np.ndarray,
    val_labels: np.ndarray,
    device: str,
    *,
    top_k_choices: Sequence[int] = TOP_K_CHOICES,
) -> tuple[int, dict[str, float]]:
    """Set the stage norms (mean map on normal ``val``) and pick the image score's top k.

    Returns the chosen k (best validation AUROC, the smaller k on ties) and the AUROC of
    every choice.
    """
    normal = val_labels == "normal"
    means = [float(m.mean()) for m in stage_maps(model, val[normal], device)]
    model.stage_norm.copy_(torch.tensor([max(m, 1e-8) for m in means]))
    flat = heatmaps(model, val, device).reshape(len(val), -1)
    ranked = -np.sort(-flat, axis=1)
    results = {
        str(k): round(auroc(~normal, ranked[:, : min(k, ranked.shape[1])].mean(1)), 4)
        for k in top_k_choices
    }
    best = max(top_k_choices, key=lambda k: (results[str(k)], -k))
    model.top_k = min(best, flat.shape[1])
    return best, results


__all__ = [
    "TOP_K_CHOICES",
    "calibrate_map",
    "distil",
    "heatmaps",
    "set_feature_scales",
    "stage_maps",
    "validation_loss",
]
