"""Augmentation suited to plankton crops, on torch batches (float32 N x 1 x S x S, 0..255).

Plankton in a flow cell or a water column has no up, down, left or right, and imagers vary
in magnification and focus, so each sample gets, independently: a rotation by any angle and
a random flip, a scale change, a small shift, optional Gaussian blur (defocus) and a mild
brightness/contrast change. Pixels that the rotation brings in from outside copy the crop's
border (its background), so no black corners appear that the network could learn from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True, slots=True)
class AugmentParams:
    """Ranges of the random transforms; ``describe()`` goes into the model card."""

    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.06  # share of the side
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 1.4)
    contrast: tuple[float, float] = (0.85, 1.15)
    brightness: float = 12.0  # +- grey levels

    def describe(self) -> str:
        """One line for the card."""
        fields = ", ".join(f"{k}={v}" for k, v in asdict(self).items())
        return f"any-angle rotation, random flip, {fields}"


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (kernel 7 taps)."""
    taps = torch.arange(-3, 4, dtype=x.dtype)
    kernel = torch.exp(-(taps[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # N x 7
    n = x.shape[0]
    grouped = x.transpose(0, 1)  # 1 x N x H x W: one group per sample
    padded = F.pad(grouped, (3, 3, 0, 0), mode="replicate")
    out = F.conv2d(padded, kernel.view(n, 1, 1, 7), groups=n)
    padded = F.pad(out, (0, 0, 3, 3), mode="replicate")
    out = F.conv2d(padded, kernel.view(n, 1, 7, 1), groups=n)
    return out.transpose(0, 1)


def augment(
    x: torch.Tensor, generator: torch.Generator, params: AugmentParams | None = None
) -> torch.Tensor:
    """A randomly transformed copy of batch ``x`` (same shape and value range)."""
    p = params or AugmentParams()
    n = x.shape[0]
    if n == 0:
        return x.clone()
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    zoom = _uniform(n, p.scale, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * p.shift * 2
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift[:, 0]], 1),
            torch.stack([sin * flip, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    blurred = torch.rand(n, generator=generator) < p.blur_probability
    if blurred.any():
        sigma = _uniform(int(blurred.sum()), p.blur_sigma, generator)
        out[blurred] = _blur(out[blurred], sigma)
    gain = _uniform(n, p.contrast, generator).view(n, 1, 1, 1)
    offset = ((torch.rand(n, generator=generator) * 2 - 1) * p.brightness).view(n, 1, 1, 1)
    centre = out.mean(dim=(2, 3), keepdim=True)
    return ((out - centre) * gain + centre + offset).clamp(0.0, 255.0)


__all__ = ["AugmentParams", "augment"]
