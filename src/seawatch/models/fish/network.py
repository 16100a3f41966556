"""The fish embedding network and its training-only inpainting decoder.

:class:`FishNet` maps a float32 N x 3 x H x W RGB batch (0..255) to L2-normalised
embeddings. It owns its per-channel normalisation ``(x / 255 - mean) / std`` so the exported
graph takes the raw output of :func:`seawatch.models.fish.head.prepare_fish`. The backbone is a
small residual CNN (stride 16); the head keeps *where* on the body a feature sits (stripe
breaks near the head are not breaks near the tail): a 1x1 reduction, flatten, a linear layer
and BatchNorm, like ArcFace's output layer (Deng et al., CVPR 2019).

:class:`InpaintDecoder` reconstructs the normalised image from the backbone's feature map;
it is used only during training (auxiliary masked-pattern inpainting) and never exported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seawatch.models.blocks import ResidualBlock, conv_bn, init_residual_weights

DEFAULT_WIDTHS: tuple[int, ...] = (12, 24, 48, 48)
DEFAULT_STRIDES: tuple[int, ...] = (2, 2, 1)  # output stride 8: a 8 x 20 grid at 64 x 160


class FishNet(nn.Module):
    """Stem (stride 2) + residual stages (stride 2 each, to 1/16) + positional embedding head.

    ``forward`` returns the L2-normalised embedding (N x D), the graph output ``embedding``;
    training calls :meth:`normalise`, :meth:`features` and :meth:`embed` separately so the
    inpainting decoder can share the feature map.
    """

    def __init__(
        self,
        *,
        height: int = 64,
        width: int = 160,
        embedding_dim: int = 128,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        strides: Sequence[int] = DEFAULT_STRIDES,
        reduce: int = 16,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
        dropout: float = 0.1,
        head: str = "flatten",
    ) -> None:
        super().__init__()
        if head not in ("flatten", "pool"):
            msg = f"head must be 'flatten' (positional) or 'pool' (global average), got {head!r}"
            raise ValueError(msg)
        if len(strides) != len(widths) - 1 or set(strides) - {1, 2}:
            msg = f"need one stride (1 or 2) per block after the stem, got {strides} for {widths}"
            raise ValueError(msg)
        self.stride = 2 * math.prod(strides)
        if height % self.stride or width % self.stride:
            msg = f"input {height} x {width} must be a multiple of {self.stride} on both sides"
            raise ValueError(msg)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            msg = f"mean and std need 3 values each with std > 0, got {mean} and {std}"
            raise ValueError(msg)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.height, self.width, self.embedding_dim = height, width, embedding_dim
        self.stem = conv_bn(3, widths[0], stride=2)
        stages: list[nn.Module] = []
        c_in = widths[0]
        for c_out, stride in zip(widths[1:], strides, strict=True):
            stages.append(ResidualBlock(c_in, c_out, stride=stride))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.feature_channels = c_in
        cells = (height // self.stride) * (width // self.stride)
        self.head_kind = head
        if head == "flatten":
            self.reduce: nn.Module = conv_bn(c_in, reduce, kernel=1)
        else:
            self.reduce = nn.AdaptiveAvgPool2d(1)
            reduce, cells = c_in, 1
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(reduce * cells, embedding_dim, bias=False),
            nn.BatchNorm1d(embedding_dim),
        )
        init_residual_weights(self)

    def set_normalisation(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Set the in-graph per-channel normalisation ``(x / 255 - mean) / std``."""
        if min(std) <= 0:
            msg = f"normalisation std must be > 0, got {std}"
            raise ValueError(msg)
        self.mean.copy_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.std.copy_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """0..255 RGB -> the normalised input the backbone sees."""
        return (x * (1.0 / 255.0) - self.mean) / self.std

    def features(self, xn: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (N x C x H/stride x W/stride) of a normalised batch."""
        return self.stages(self.stem(xn))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised embedding (N x D) of a feature map."""
        return F.normalize(self.head(self.reduce(features)), dim=1, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings (N x D) of a float32 N x 3 x H x W RGB batch, 0..255."""
        return self.embed(self.features(self.normalise(x)))


class InpaintDecoder(nn.Module):
    """Feature map (1/stride) -> normalised image (N x 3 x H x W); training only.

    x2 bilinear upsamplings with 3x3 convolutions, then a sub-pixel (PixelShuffle) layer for
    the last x2, so the decoder stays cheaper than the backbone.
    """

    def __init__(self, c_in: int, stride: int = 8, widths: Sequence[int] = (16, 8, 8)) -> None:
        super().__init__()
        steps = int(math.log2(stride)) - 1
        if 2 ** (steps + 1) != stride or not 0 <= steps <= len(widths):
            msg = f"decoder stride must be a power of two up to {2 ** (len(widths) + 1)}"
            raise ValueError(msg)
        layers: list[nn.Module] = []
        for c_out in widths[:steps]:
            layers += [nn.Upsample(scale_factor=2, mode="bilinear"), conv_bn(c_in, c_out)]
            c_in = c_out
        layers += [nn.Conv2d(c_in, 3 * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def describe(model: FishNet) -> str:
    """One line naming the architecture, for the model card."""
    widths = [model.stem[0].out_channels] + [b.conv2[0].out_channels for b in model.stages]
    params = sum(p.numel() for p in model.parameters())
    cells = f"{model.height // model.stride}x{model.width // model.stride}"
    head = (
        f"1x1 reduction to {model.reduce[0].out_channels} ch, flatten ({cells} cells)"
        if model.head_kind == "flatten"
        else "global average pooling"
    )
    return (
        f"FishNet: 3x3 stem + {len(model.stages)} residual blocks, widths {widths}, output "
        f"stride {model.stride}; {head}, linear to {model.embedding_dim} + BatchNorm, L2 "
        f"normalisation; in-graph per-channel normalisation; {params / 1e6:.2f} M parameters "
        "(the inpainting decoder is not exported)"
    )


__all__ = ["DEFAULT_STRIDES", "DEFAULT_WIDTHS", "FishNet", "InpaintDecoder", "describe"]
