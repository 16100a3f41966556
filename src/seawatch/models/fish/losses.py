"""Training losses: sub-center ArcFace and masked-patch inpainting (torch, training only).

Sub-center ArcFace (Deng et al., ECCV 2020) keeps ``K`` unit-norm centres per identity; a
sample's cosine to a class is its best sub-centre, so noisy or unusual views can gather at a
sub-centre of their own instead of pulling the main one. The target class gets an additive
angular margin, ``cos(theta + m)``, and all logits are scaled by ``s``.

The inpainting task hides random patches of fish skin and asks a decoder to paint the
stripe pattern back from the backbone's features (masked-image modelling); only the hidden
pixels count in its loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SubCenterArcFace(nn.Module):
    """Sub-center ArcFace head: ``K`` centres per class, margin ``m`` (radians), scale ``s``."""

    def __init__(
        self,
        embedding_dim: int,
        n_classes: int,
        *,
        k: int = 3,
        scale: float = 30.0,
        margin: float = 0.4,
    ) -> None:
        super().__init__()
        if n_classes < 2 or k < 1:
            msg = f"need at least 2 classes and 1 sub-centre, got {n_classes} and {k}"
            raise ValueError(msg)
        if not 0.0 <= margin < math.pi / 2:
            msg = f"margin must be in [0, pi/2) radians, got {margin}"
            raise ValueError(msg)
        self.n_classes, self.k, self.scale, self.margin = n_classes, k, scale, margin
        self.weight = nn.Parameter(torch.empty(n_classes * k, embedding_dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine of each embedding to each class: the best of its ``K`` sub-centres (N x C)."""
        cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))
        return cos.view(len(embeddings), self.n_classes, self.k).amax(dim=2)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the angular margin added to each sample's own class."""
        cos = self.cosine(embeddings).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        target = cos.gather(1, labels[:, None])
        sin = torch.sqrt(1.0 - target * target)
        with_margin = target * math.cos(self.margin) - sin * math.sin(self.margin)
        # Past theta = pi - m, cos(theta + m) would rise again: use a linear penalty there.
        fallback = target - math.sin(math.pi - self.margin) * self.margin
        with_margin = torch.where(target > math.cos(math.pi - self.margin), with_margin, fallback)
        return self.scale * cos.scatter(1, labels[:, None], with_margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the margin logits."""
        return F.cross_entropy(self.logits(embeddings, labels), labels)


def patch_mask(
    skin: torch.Tensor,
    generator: torch.Generator,
    *,
    patch: int = 8,
    ratio: tuple[float, float] = (0.15, 0.4),
    p_sample: float = 0.5,
) -> torch.Tensor:
    """Random patches to hide (N x 1 x H x W, 1 = hidden) on fish skin.

    ``skin`` (N x H x W bool) marks visible skin; a ``patch`` x ``patch`` cell is a candidate
    when at least half of it is skin. Each sample is masked with probability ``p_sample``,
    hiding a random ``ratio`` share of its candidate cells.
    """
    n, h, w = skin.shape
    if h % patch or w % patch:
        msg = f"image {h} x {w} must be a multiple of the patch size {patch}"
        raise ValueError(msg)
    coverage = F.avg_pool2d(skin[:, None].float(), patch)
    share = torch.empty(n, 1, 1, 1).uniform_(*ratio, generator=generator)
    share = share * (torch.rand(n, 1, 1, 1, generator=generator) < p_sample)
    cells = (torch.rand(coverage.shape, generator=generator) < share) & (coverage >= 0.5)
    return F.interpolate(cells.float(), scale_factor=patch, mode="nearest")


def masked_l1(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over hidden pixels only (0 when nothing is hidden)."""
    if recon.shape != target.shape or mask.shape[-2:] != target.shape[-2:]:
        msg = f"shapes differ: recon {recon.shape}, target {target.shape}, mask {mask.shape}"
        raise ValueError(msg)
    hidden = mask.expand_as(target)
    return ((recon - target).abs() * hidden).sum() / hidden.sum().clamp_min(1.0)


__all__ = ["SubCenterArcFace", "masked_l1", "patch_mask"]
