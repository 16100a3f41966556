"""The teacher: pretrained by masked-image inpainting at three resolutions, or loaded.

No ImageNet weights can be downloaded here, so the teacher is pretrained inside the project
on a self-supervised task that needs no labels and keeps *local* colour and texture in every
stage: blocks of the colour image are blanked out and each stage (1/2, 1/4, 1/8) predicts,
through a 3x3 convolution, the whole image at its own resolution, blanked blocks included,
from context. The images are normal synthetic otoliths (the student's training set) and as
many generic "dead leaves" images (:mod:`._textures`). Anomalies are never shown to it. A
``state_dict`` saved from :class:`FeatureNet` (e.g. ``teacher.pt`` of an artifact) can be
loaded instead with :func:`load_teacher`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from seawatch.errors import ConfigError
from seawatch.models.otolith.network import FeatureNet
from seawatch.models.training import log_line

MASK_BLOCK = 16  # side of the blanked blocks in input pixels (at 128 px: an eighth)
MASK_SHARE = 0.35
MASKED_WEIGHT = 3.0  # loss weight of blanked pixels relative to visible ones


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same random 90-degree rotation and flip for the whole batch (cheap, exact)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    return x.flip(3) if bool(torch.rand(1, generator=generator) < 0.5) else x


def pretrain_teacher(
    images: np.ndarray,
    *,
    rgb_mean: tuple[float, float, float],
    rgb_std: tuple[float, float, float],
    widths: tuple[int, ...],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    progress: Progress,
) -> tuple[FeatureNet, list[dict[str, float]]]:
    """Pretrain a colour :class:`FeatureNet` on ``images`` (N x 3 x S x S uint8 RGB).

    Returns the network (eval mode, frozen) and the loss per epoch.
    """
    torch.manual_seed(seed)
    net = FeatureNet(3, widths).to(device)
    heads = nn.ModuleList(nn.Conv2d(c, 3, 3, padding=1) for c in widths[1:]).to(device)
    params = [*net.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = max(1, len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(1, epochs * steps), pct_start=0.2
    )
    mean = torch.tensor(rgb_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(rgb_std, device=device).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(images)
    block = max(2, MASK_BLOCK * images.shape[-1] // 128)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        task = progress.add_task(f"teacher {epoch}/{epochs}", total=steps, info="")
        order = torch.randperm(len(data), generator=generator)
        net.train()
        total = 0.0
        for step in range(steps):
            batch = data[order[step * batch_size : (step + 1) * batch_size]]
            x = (augment(batch.float(), generator).to(device) / 255.0 - mean) / std
            side = x.shape[-1]
            cells = torch.rand(len(x), 1, side // block, side // block, generator=generator)
            hidden = F.interpolate((cells < MASK_SHARE).float(), size=(side, side)).to(device)
            loss = torch.zeros((), device=device)
            for head, feature in zip(heads, net(x * (1.0 - hidden)), strict=True):
                factor = side // feature.shape[-1]
                target = F.avg_pool2d(x, factor)
                weight = 1.0 + (MASKED_WEIGHT - 1.0) * F.avg_pool2d(hidden, factor)
                loss = loss + ((head(feature) - target) ** 2 * weight).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
            progress.update(task, advance=1, info=f"loss {total / (step + 1):.4f}")
        history.append({"epoch": epoch, "loss": round(total / steps, 5)})
        log_line(
            progress,
            f"teacher_epoch={epoch} loss={total / steps:.5f} "
            f"seconds={time.perf_counter() - started:.1f}",
        )
    return freeze(net), history


def freeze(net: FeatureNet) -> FeatureNet:
    """Eval mode and no gradients: the teacher does not change during distillation."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_teacher(path: Path, widths: tuple[int, ...]) -> FeatureNet:
    """A frozen colour :class:`FeatureNet` with the ``state_dict`` saved at ``path``."""
    net = FeatureNet(3, widths)
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (OSError, RuntimeError, KeyError) as exc:
        msg = (
            f"--teacher-weights {path}: not a FeatureNet state_dict with widths {widths} "
            f"({exc}); pass a teacher.pt written by `seawatch train otolith`"
        )
        raise ConfigError(msg) from exc
    return freeze(net)


__all__ = ["augment", "freeze", "load_teacher", "pretrain_teacher"]
