"""Fitting the two networks: the U-Net (supervised, on pseudo-labels, with distillation) and
the quality regressor. Imports torch: training code only.

One step of :func:`fit_segnet` takes a batch of random square crops (flips and quarter
turns), and the loss is

- **supervised**: binary cross-entropy of the foreground and centre-ness maps against the
  targets (true masks, or kept pseudo-masks; centre-ness is a soft target), pixel-weighted
  (weight 0: ignored, as the regions of pseudo-instances the quality network rejected);
- **distillation** (``kd_weight`` > 0, on the tiles that carry the teacher's soft maps):
  binary cross-entropy of both maps against the teacher's probabilities on every pixel, so the
  student learns the teacher's uncertainty instead of its hard, noisy pseudo-masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from seawatch.models.segmentation.network import QualityNet, SegNet


@dataclass
class TrainData:
    """What one U-Net is fitted on (all N x H x W, network scale).

    ``weight``: per-pixel loss weight (None: 1 everywhere); ``soft``: the teacher's
    probabilities (N x 2 x H x W uint8, /255) for distillation and ``distil``: which tiles
    use them (None: none); ``draw``: each tile's probability of being drawn into a batch
    (None: uniform).
    """

    inputs: np.ndarray
    fg: np.ndarray
    centre: np.ndarray  # uint8 0..255
    weight: np.ndarray | None = None
    soft: np.ndarray | None = None
    distil: np.ndarray | None = None
    draw: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)


def _augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    k = int(rng.integers(4))
    flip = bool(rng.random() < 0.5)
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return out


def _batch(data: TrainData, rng: np.random.Generator, batch: int, crop: int):
    n, h, w = data.inputs.shape
    x, fg, ct, wt, soft, kd = [], [], [], [], [], []
    picks = rng.integers(0, n, batch) if data.draw is None else rng.choice(n, batch, p=data.draw)
    for i in picks:
        y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        parts = [data.inputs[i][window], data.fg[i][window], data.centre[i][window]]
        parts.append(
            data.weight[i][window] if data.weight is not None else np.ones((crop, crop), np.float32)
        )
        use = data.soft is not None and data.distil is not None and bool(data.distil[i])
        blank = np.zeros((2, crop, crop), np.uint8)
        parts.append(data.soft[i][(slice(None), *window)] if use else blank)
        parts = _augment(parts, rng)
        for store, part in zip((x, fg, ct, wt, soft), parts, strict=True):
            store.append(part)
        kd.append(use)
    return (
        torch.from_numpy(np.stack(x)[:, None].astype(np.float32)),
        torch.from_numpy(np.stack(fg).astype(np.float32)),
        torch.from_numpy(np.stack(ct).astype(np.float32) / 255.0),
        torch.from_numpy(np.stack(wt).astype(np.float32)),
        torch.from_numpy(np.stack(soft).astype(np.float32) / 255.0),
        torch.tensor(kd),
    )


@dataclass(frozen=True)
class FitSettings:
    """One U-Net fit."""

    steps: int = 400
    batch: int = 8
    crop: int = 128
    lr: float = 3e-3
    widths: tuple[int, ...] = (12, 24, 48, 64)
    kd_weight: float = 0.0
    fine: int = 8  # the refinement's channels at the input's resolution (0: none)
    downsample: int = 1  # the network runs at 1/downsample of its input (see SegNet)


def segnet_loss(
    logits: torch.Tensor,
    fg: torch.Tensor,
    centre: torch.Tensor,
    weight: torch.Tensor,
    soft: torch.Tensor,
    distil: torch.Tensor,
    settings: FitSettings,
) -> torch.Tensor:
    """The supervised (pixel-weighted) plus distillation loss of one batch."""
    denom = weight.sum().clamp(min=1.0)
    loss = 0.0
    for channel, target in ((0, fg), (1, centre)):
        bce = F.binary_cross_entropy_with_logits(logits[:, channel], target, reduction="none")
        loss = loss + (bce * weight).sum() / denom
    if settings.kd_weight > 0 and bool(distil.any()):
        kd = F.binary_cross_entropy_with_logits(logits[distil], soft[distil])
        loss = loss + settings.kd_weight * kd
    return loss


def fit_segnet(
    data: TrainData,
    settings: FitSettings,
    *,
    seed: int,
    start: SegNet | None = None,
    progress: Callable[[int, float], object] | None = None,
) -> SegNet:
    """Fit a :class:`SegNet` on ``data`` (a fresh one, or a copy of ``start``);
    ``progress(1, loss)`` after each step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SegNet(settings.widths, settings.fine, settings.downsample)
    if start is not None:
        net.load_state_dict(start.state_dict())

    def loss() -> torch.Tensor:
        x, fg, ct, wt, soft, kd = _batch(data, rng, settings.batch, settings.crop)
        return segnet_loss(net.logits(x), fg, ct, wt, soft, kd, settings)

    _optimise(net, loss, lr=settings.lr, steps=settings.steps, progress=progress)
    return net


def _optimise(
    net: torch.nn.Module,
    loss: Callable[[], torch.Tensor],
    *,
    lr: float,
    steps: int,
    progress: Callable[[int, float], object] | None,
) -> None:
    """``steps`` AdamW steps on ``loss()`` under a one-cycle schedule; the net left in eval mode."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.15
    )
    net.train()
    for _ in range(steps):
        value = loss()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(1, float(value.detach()))
    net.eval()


@torch.no_grad()
def predict_maps(
    net: SegNet, inputs: np.ndarray, *, batch: int = 8, flips: bool = False
) -> np.ndarray:
    """Maps (float32 N x 2 x H x W) of network inputs (uint8 N x H x W); with ``flips`` the
    mean over the input and its three mirror images (test-time augmentation, for a
    teacher's pseudo-labels)."""
    net.eval()
    out = []
    views = ((), (-1,), (-2,), (-2, -1)) if flips else ((),)
    for start in range(0, len(inputs), batch):
        x = torch.from_numpy(inputs[start : start + batch, None].astype(np.float32))
        total = sum(net(x.flip(v)).flip(v) if v else net(x) for v in views)
        out.append((total / len(views)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 2, *inputs.shape[1:]), np.float32)


def fit_quality(
    windows: np.ndarray,
    iou: np.ndarray,
    *,
    steps: int,
    seed: int,
    batch: int = 64,
    lr: float = 3e-3,
    progress: Callable[[int, float], object] | None = None,
) -> QualityNet:
    """Fit a :class:`QualityNet` to regress ``iou`` (smooth L1) from windows, with flips
    and quarter turns."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = QualityNet()

    def loss() -> torch.Tensor:
        index = rng.integers(0, len(windows), batch)
        w = np.rot90(windows[index], int(rng.integers(4)), axes=(-2, -1))
        if rng.random() < 0.5:
            w = w[..., ::-1]
        pred = net(torch.from_numpy(np.ascontiguousarray(w)))
        return F.smooth_l1_loss(pred, torch.from_numpy(iou[index].astype(np.float32)), beta=0.1)

    _optimise(net, loss, lr=lr, steps=steps, progress=progress)
    return net


@torch.no_grad()
def predict_quality(net: QualityNet, windows: np.ndarray) -> np.ndarray:
    """Predicted IoU of each window (float32 N)."""
    net.eval()
    if not len(windows):
        return np.zeros(0, np.float32)
    return net(torch.from_numpy(windows)).numpy()


__all__ = [
    "FitSettings",
    "TrainData",
    "fit_quality",
    "fit_segnet",
    "predict_maps",
    "predict_quality",
    "segnet_loss",
]
