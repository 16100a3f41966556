"""Self-supervised pretraining of the plankton backbone on unlabelled crops (SimCLR).

Why SimCLR (Chen et al., ICML 2020) rather than BYOL or DINO: it is the method the
zooplankton pipeline of seed 003 cites; it needs no momentum teacher, no centring or
sharpening schedule and no predictor (fewer knobs to get wrong on a new instrument); and its
one requirement, enough negatives per batch, is met by the 128-256-crop batches a CPU or one
GPU trains this 0.5 M-parameter network with. Its weakness (it wants strong augmentations)
suits plankton: organisms have no up or down, imagers differ in magnification, focus,
contrast and noise, so two views of one crop differ by any rotation and flip, scale, blur,
contrast, brightness and sensor noise, and the backbone learns what stays.

The backbone (stem + residual stages + pooling) feeds a two-layer projection head; the loss
is NT-Xent over the 2N views of a batch. Training can start from another backbone (the
synthetic-pretrained one: domain-adaptive pretraining) or from scratch. The head is thrown
away; the backbone is written as an artifact (:mod:`.backbone`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seawatch.models.plankton.augment import AugmentParams, augment
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.pretrained import load_backbone

VIEW = AugmentParams(
    scale=(0.7, 1.3),
    shift=0.1,
    blur_probability=0.5,
    blur_sigma=(0.4, 2.0),
    contrast=(0.6, 1.4),
    brightness=30.0,
)
NOISE_SIGMA = (0.0, 8.0)  # grey levels of added sensor noise per view


@dataclass(frozen=True, slots=True)
class SslParams:
    """The pretraining schedule."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    temperature: float = 0.2
    projection_dim: int = 64

    def describe(self) -> str:
        """One line for the backbone card."""
        return (
            f"SimCLR NT-Xent (temperature {self.temperature}), batch {self.batch_size} "
            f"(2 views each), {self.epochs} epochs, AdamW lr {self.lr:g} cosine, projection "
            f"{self.projection_dim}; views: {VIEW.describe()}, noise sigma {NOISE_SIGMA}"
        )


class SimCLR(nn.Module):
    """A PlanktonNet backbone and a projection head."""

    def __init__(self, backbone: PlanktonNet, projection_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        width = backbone.head[-1].in_features
        self.projector = nn.Sequential(
            nn.Linear(width, 256), nn.ReLU(inplace=True), nn.Linear(256, projection_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(self.backbone.features(x)), dim=1)


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """The SimCLR loss of 2N unit embeddings, views i and i + N being positives."""
    n = z.shape[0] // 2
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, targets)


def _view(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    out = augment(x, generator, VIEW)
    sigma = NOISE_SIGMA[0] + (NOISE_SIGMA[1] - NOISE_SIGMA[0]) * torch.rand(
        len(x), 1, 1, 1, generator=generator
    )
    return (out + sigma * torch.randn(out.shape, generator=generator)).clamp(0.0, 255.0)


def pretrain_simclr(
    images: np.ndarray,
    *,
    start: Path | None = None,
    params: SslParams | None = None,
    seed: int = 0,
    device: str = "cpu",
    on_epoch=None,
) -> tuple[PlanktonNet, list[float]]:
    """Pretrain a backbone on unlabelled prepared crops (uint8 N x S x S); return it (its
    head is untrained) and the loss per epoch. ``on_epoch(epoch, loss)`` reports progress."""
    params = params or SslParams()
    if len(images) < 2 * params.batch_size:
        msg = f"SimCLR needs at least {2 * params.batch_size} images, got {len(images)}"
        raise ValueError(msg)
    torch.manual_seed(seed)
    mean, std = float(images.mean() / 255.0), max(float(images.std() / 255.0), 1e-3)
    backbone = PlanktonNet(2, mean=mean, std=std)
    if start is not None:
        load_backbone(backbone, start)
    model = SimCLR(backbone, params.projection_dim).to(device)
    steps = len(images) // params.batch_size  # full batches only: negatives per batch fixed
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=params.epochs * steps, pct_start=0.1
    )
    x = torch.from_numpy(images[:, None])
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    history = []
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total, started = 0.0, time.perf_counter()
        for step in range(steps):
            batch = x[order[step * params.batch_size : (step + 1) * params.batch_size]].float()
            views = torch.cat([_view(batch, generator), _view(batch, generator)]).to(device)
            loss = nt_xent(model(views), params.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        history.append(round(total / steps, 4))
        if on_epoch is not None:
            on_epoch(epoch, history[-1], time.perf_counter() - started)
    return backbone.cpu().eval(), history


def chance_loss(batch_size: int) -> float:
    """NT-Xent of embeddings that know nothing: log(2N - 1)."""
    return math.log(2 * batch_size - 1)


__all__ = ["VIEW", "SimCLR", "SslParams", "chance_loss", "nt_xent", "pretrain_simclr"]
