"""The training loop: sub-center ArcFace + masked-pattern inpainting, with augmentation.

Every epoch brings fresh renders (see :class:`~seawatch.models.fish.data.EpochRenderer`);
on top, a share of each batch gets a light affine and photometric jitter (no flips: a
mirrored fish shows the pattern of its other flank), then about half its samples get random
patches of skin hidden (:func:`~seawatch.models.fish.losses.patch_mask`). The backbone sees the
masked batch; the embedding goes to the ArcFace head, the feature map of the masked samples
to the inpainting decoder. Loss = ArcFace + ``inpaint_weight`` x masked L1. The ArcFace
margin is warmed up linearly from 0 over ``margin_warmup`` of the steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from seawatch.models.fish.losses import SubCenterArcFace, masked_l1, patch_mask
from seawatch.models.fish.network import FishNet, InpaintDecoder
from seawatch.models.training import optimise

#: Epoch number (1-based) -> prepared images (N x 3 x H x W uint8), class ids, skin masks.
EpochData = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class FitConfig:
    """Optimisation and loss settings (recorded in the model card)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 6e-3
    weight_decay: float = 5e-4
    subcenters: int = 3
    scale: float = 30.0
    margin: float = 0.35
    margin_warmup: float = 0.3
    inpaint_weight: float = 0.3
    mask_patch: int = 8
    mask_share: float = 0.5
    augment: float = 0.5  # share of samples jittered on top of the generator's variation

    def summary(self) -> dict[str, Any]:
        """A JSON-able description for the model card."""
        return {
            "batch_size": self.batch_size,
            "optimizer": f"AdamW(lr={self.lr:g}, weight_decay={self.weight_decay:g})",
            "schedule": "OneCycleLR (cosine, 20% warm-up), per batch",
            "loss": {
                "arcface": f"sub-center ArcFace, K={self.subcenters}, s={self.scale:g}, "
                f"m={self.margin:g} rad (linear warm-up over {self.margin_warmup:.0%})",
                "inpainting": f"masked L1 on hidden {self.mask_patch}x{self.mask_patch} skin "
                f"patches (15-40% of skin, {self.mask_share:.0%} of samples), "
                f"weight {self.inpaint_weight:g}; decoder not exported",
            },
            "augmentation": "fresh renders every epoch (pose, scale, light, background, "
            f"occlusion, noise, JPEG); on {self.augment:.0%} of the samples also affine jitter "
            "(scale 0.95-1.05, shift 3%, rotation 2 deg), brightness/contrast/colour jitter "
            "and Gaussian noise; no flips (a mirrored fish shows its other flank)",
        }


def fit(
    model: FishNet,
    epoch_data: EpochData,
    n_classes: int,
    config: FitConfig,
    generator: torch.Generator,
    *,
    progress: Progress,
    device: str = "cpu",
    centres: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place; return per-epoch losses.

    ``epoch_data(e)`` gives the sightings of epoch ``e`` with class ids ``0 .. n_classes-1``;
    every epoch must have the same number of samples (it fixes the schedule). ``centres``
    (n_classes x D), when given, start every sub-centre of each class at that class's mean
    embedding under the starting network (weight imprinting, Qi et al., CVPR 2018), so a
    pretrained backbone's first gradients come from a head that already agrees with it.
    """
    arcface = SubCenterArcFace(
        model.embedding_dim,
        n_classes,
        k=config.subcenters,
        scale=config.scale,
        margin=config.margin,
    )
    if centres is not None:
        if tuple(centres.shape) != (n_classes, model.embedding_dim):
            msg = f"centres must be {n_classes} x {model.embedding_dim}, got {tuple(centres.shape)}"
            raise ValueError(msg)
        with torch.no_grad():
            arcface.weight.copy_(centres.float().repeat_interleave(config.subcenters, 0))
    decoder = InpaintDecoder(model.feature_channels, model.stride)
    modules = [model.to(device), decoder.to(device), arcface.to(device)]
    params = [p for module in modules for p in module.parameters()]
    images, labels, skins = epoch_data(1)
    steps = max(1, len(images) // config.batch_size)
    total = config.epochs * steps
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total, pct_start=0.2
    )
    history: list[dict[str, float]] = []
    started, step_no = time.perf_counter(), 0
    for epoch in range(1, config.epochs + 1):
        if epoch > 1:
            images, labels, skins = epoch_data(epoch)
        x_all, s_all = torch.from_numpy(images), torch.from_numpy(skins)
        y = torch.from_numpy(np.asarray(labels, np.int64))
        if int(y.min()) < 0 or int(y.max()) >= n_classes:
            msg = f"class ids must be in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}"
            raise ValueError(msg)
        task = progress.add_task(f"epoch {epoch}/{config.epochs}", total=steps, info="")
        for module in modules:
            module.train()
        order = torch.randperm(len(x_all), generator=generator)
        sums = np.zeros(3)
        for step in range(steps):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            arcface.margin = config.margin * min(
                1.0, step_no / max(1, config.margin_warmup * total)
            )
            xb, sb = _augment(x_all[idx].float(), s_all[idx], generator, config.augment)
            xb, sb, yb = xb.to(device), sb.to(device), y[idx].to(device)
            xn = model.normalise(xb)
            mask = patch_mask(
                sb.cpu(), generator, patch=config.mask_patch, p_sample=config.mask_share
            ).to(device)
            features = model.features(xn * (1 - mask))
            emb = model.embed(features)
            logits = arcface.logits(emb, yb)
            arc_loss = F.cross_entropy(logits, yb)
            hidden = mask.flatten(1).amax(1) > 0
            inpaint = torch.zeros((), device=device)
            if hidden.any():
                recon = decoder(features[hidden])
                inpaint = masked_l1(recon, xn[hidden], mask[hidden])
            loss = arc_loss + config.inpaint_weight * inpaint
            optimise(loss, optimizer, schedule)
            step_no += 1
            with torch.no_grad():
                accuracy = (arcface.cosine(emb).argmax(1) == yb).float().mean()
            sums += (arc_loss.item(), inpaint.item(), accuracy.item())
            mean = sums / (step + 1)
            progress.update(
                task,
                advance=1,
                info=f"arcface {mean[0]:.3f} inpaint {mean[1]:.3f} acc {mean[2]:.3f}",
            )
        mean = sums / steps
        history.append(
            {
                "epoch": epoch,
                "arcface_loss": round(float(mean[0]), 4),
                "inpaint_loss": round(float(mean[1]), 4),
                "train_accuracy": round(float(mean[2]), 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        if not progress.console.is_terminal:
            progress.console.print(" ".join(f"{k}={v}" for k, v in history[-1].items()))
    model.cpu().eval()
    return history


def _augment(
    x: torch.Tensor, skin: torch.Tensor, generator: torch.Generator, share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine and photometric jitter on a ``share`` of the samples; skin follows geometry."""
    chosen = torch.rand(len(x), generator=generator) < share
    if not chosen.any():
        return x, skin
    x, skin = x.clone(), skin.clone()
    x[chosen], skin[chosen] = _jitter(x[chosen], skin[chosen], generator)
    return x, skin


def _jitter(
    x: torch.Tensor, skin: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x)
    u = torch.rand((n, 6), generator=generator)
    scale = 0.95 + 0.1 * u[:, 0]
    angle = (u[:, 1] - 0.5) * math.radians(4)
    aspect = x.shape[3] / x.shape[2]
    theta = torch.zeros((n, 2, 3))
    theta[:, 0, 0] = torch.cos(angle) / scale
    theta[:, 0, 1] = -torch.sin(angle) / scale / aspect
    theta[:, 1, 0] = torch.sin(angle) / scale * aspect
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, :, 2] = (u[:, 2:4] - 0.5) * 0.06
    grid = F.affine_grid(theta, [n, 4, x.shape[2], x.shape[3]], align_corners=False)
    both = torch.cat([x, skin[:, None].float()], 1)
    warped = F.grid_sample(both, grid, padding_mode="border", align_corners=False)
    x, skin = warped[:, :3], warped[:, 3] > 0.5
    gain = (0.8 + 0.4 * u[:, 4]).view(n, 1, 1, 1)
    colour = 0.92 + 0.16 * torch.rand((n, 3, 1, 1), generator=generator)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (0.8 + 0.4 * u[:, 5]).view(n, 1, 1, 1)
    x = ((x - mean) * contrast + mean) * gain * colour
    x = x + torch.randn(x.shape, generator=generator) * 3.0
    return x.clamp(0, 255), skin


__all__ = ["EpochData", "FitConfig", "fit"]
