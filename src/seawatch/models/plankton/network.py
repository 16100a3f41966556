"""The plankton classifier network: a compact residual CNN for object crops, 1 x 64 x 64 by
default (gray); ``in_channels`` 3 takes colour crops, and any square side works (global
average pooling after the last stage), e.g. the 96 or 128 px a user's folder may choose.

The module owns its normalisation, ``(x / 255 - mean) / std``, and its temperature-scaled
softmax (the calibration temperature is a buffer, fitted after training), so the
exported ONNX graph takes the raw output of :func:`seawatch.contracts.preprocess.batch_tensor`
(float32 NCHW, 0..255) and returns probabilities: the live path cannot drift from training.
Training uses :meth:`PlanktonNet.logits`. The exported graph (:class:`WithFeatures`) also
returns the penultimate features and the pooled third-stage map, which the
out-of-distribution score reads.

Plankton has no up or down: a graph may average its features over the crop's dihedral views
(``views`` 4: the four right-angle turns; 8: each also mirrored). The head is linear, so
the mean features give the mean logits, and every output is the same for a crop turned or
flipped, at ``views`` times the compute (test-time augmentation inside the graph).
"""

from __future__ import annotations

import torch
from torch import nn

from seawatch.models.blocks import ResidualBlock, conv_bn, init_residual_weights

DEFAULT_WIDTHS: tuple[int, ...] = (24, 48, 96, 160)
VIEW_COUNTS: tuple[int, ...] = (1, 4, 8)  # dihedral views a graph may average over


class PlanktonNet(nn.Module):
    """Stem + four residual stages (64 -> 32 -> 16 -> 8 -> 4 px) + global average pooling.

    ``forward`` returns softmax probabilities (N x C), the graph output ``probs``;
    ``logits`` returns the pre-softmax scores for training.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        mean: float = 0.5,
        std: float = 0.25,
        widths: tuple[int, ...] = DEFAULT_WIDTHS,
        dropout: float = 0.1,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            msg = f"a classifier needs at least 2 classes, got num_classes={num_classes}"
            raise ValueError(msg)
        if std <= 0:
            msg = f"normalisation std must be > 0, got {std}"
            raise ValueError(msg)
        if in_channels not in (1, 3):
            msg = f"in_channels must be 1 (gray) or 3 (colour), got {in_channels}"
            raise ValueError(msg)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.register_buffer("temperature", torch.tensor(1.0))
        stem_width = max(8, widths[0] // 2)
        self.stem = conv_bn(in_channels, stem_width)
        self.in_channels = in_channels
        stages: list[nn.Module] = []
        c_in = stem_width
        for width in widths:
            stages.append(ResidualBlock(c_in, width, stride=2))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        self.num_classes = num_classes
        init_residual_weights(self)

    def set_normalisation(self, mean: float, std: float) -> None:
        """Set the in-graph normalisation ``(x / 255 - mean) / std``."""
        if std <= 0:
            msg = f"normalisation std must be > 0, got {std}"
            raise ValueError(msg)
        self.mean.fill_(float(mean))
        self.std.fill_(float(std))

    def set_temperature(self, temperature: float) -> None:
        """Set the calibration temperature: ``forward`` returns ``softmax(logits / T)``."""
        if not temperature > 0:
            msg = f"temperature must be > 0, got {temperature}"
            raise ValueError(msg)
        self.temperature.fill_(float(temperature))

    def before_last_stage(self, x: torch.Tensor) -> torch.Tensor:
        """The map the last stage reads (N x widths[-2] x h x w): the normalised input
        ``(x / 255 - mean) / std`` through the stem and every stage but the last."""
        x = (x * (1.0 / 255.0) - self.mean) / self.std
        return self.stages[:-1](self.stem(x))

    def pooled_last_stage(self, mapped: torch.Tensor) -> torch.Tensor:
        """Penultimate features of :meth:`before_last_stage`'s map: the last stage, pooled."""
        return torch.flatten(self.pool(self.stages[-1](mapped)), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N x widths[-1]): the pooled last stage the linear head reads,
        graph output ``features`` (the out-of-distribution score works on them)."""
        return self.pooled_last_stage(self.before_last_stage(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax class scores for a float32 N x C x H x W batch with values 0..255."""
        return self.head(self.features(x))

    def view_logits(self, x: torch.Tensor, views: int = 1) -> torch.Tensor:
        """:meth:`logits` averaged over ``views`` dihedral views of each crop (the head of the
        mean features; 1: :meth:`logits` itself)."""
        if views == 1:
            return self.logits(x)
        return self.head(view_mean(self.features(dihedral_views(x, views)), views))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities (N x C), ``softmax(logits / temperature)``."""
        return torch.softmax(self.logits(x) / self.temperature, dim=1)


class WithFeatures(nn.Module):
    """The exported graph: ``(probs, features, stage3)`` of a :class:`PlanktonNet`, one pass.

    ``stage3`` is the map of the stage before the last (the third of the default four, 8 x 8
    at 64 px) pooled to each channel's mean and standard deviation (N x 2C, 192 numbers by
    default): less invariant than the pooled last stage, the out-of-distribution scorer reads
    it beside ``features``. The same layers in the same order as :meth:`PlanktonNet.features`
    (:meth:`PlanktonNet.before_last_stage`, then the last stage on the kept map), so
    ``probs`` and ``features`` are unchanged.

    With ``views`` 4 or 8 each crop is seen that many ways (:func:`dihedral_views`) and the
    features and stage-3 statistics are the means over its views; ``probs`` is the softmax of
    the head on the mean features (:meth:`PlanktonNet.view_logits`).
    """

    def __init__(self, net: PlanktonNet, views: int = 1) -> None:
        super().__init__()
        check_views(views)
        self.net = net
        self.views = views

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Calibrated probabilities (N x C), penultimate features (N x D) and the pooled
        stage-3 statistics (N x 2C')."""
        net, views = self.net, self.views
        mapped = net.before_last_stage(dihedral_views(x, views))
        features = net.pooled_last_stage(mapped)
        stage3 = stage_stats(mapped)
        if views > 1:
            features, stage3 = view_mean(features, views), view_mean(stage3, views)
        probs = torch.softmax(net.head(features) / net.temperature, dim=1)
        return probs, features, stage3


def check_views(views: int) -> int:
    """``views`` if it is one of :data:`VIEW_COUNTS`, else a ValueError naming them."""
    if views not in VIEW_COUNTS:
        msg = f"views must be one of {VIEW_COUNTS} (dihedral views averaged), got {views}"
        raise ValueError(msg)
    return views


def dihedral_views(x: torch.Tensor, views: int) -> torch.Tensor:
    """A square N x C x S x S batch seen ``views`` ways, view-major (views*N x C x S x S):
    1 as it is, 4 its right-angle turns, 8 the turns and their mirror images."""
    check_views(views)
    if views == 1:
        return x
    turned = x.transpose(2, 3)  # rot90 written as transposes and flips: ONNX has no rot90
    turns = [x, turned.flip(2), x.flip((2, 3)), turned.flip(3)]  # 0, 90, 180, 270 degrees
    if views == 8:
        turns += [t.flip(3) for t in turns]
    return torch.cat(turns)


def view_mean(values: torch.Tensor, views: int) -> torch.Tensor:
    """The mean over views of a view-major (views*N x ...) tensor (N x ...)."""
    return values.reshape(views, -1, *values.shape[1:]).mean(0)


def stage_stats(mapped: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and (unbiased) standard deviation of a N x C x H x W map (N x 2C).

    Written out (means, a product, a square root) rather than ``Tensor.std``, whose ONNX
    export needs ``ReduceProd``, an operator the torch runner of the graph lacks. The map
    needs at least two cells (inputs of 16 px and more for the third of four stages)."""
    mean = mapped.mean((2, 3), keepdim=True)
    centred = mapped - mean
    cells = mapped.shape[2] * mapped.shape[3]
    variance = (centred * centred).mean((2, 3)) * (cells / (cells - 1))
    return torch.cat([mean.flatten(1), torch.sqrt(variance)], 1)


def describe(model: PlanktonNet) -> str:
    """One line naming the architecture, for the model card."""
    widths = [block.conv2[0].out_channels for block in model.stages]
    params = sum(p.numel() for p in model.parameters())
    colour = "colour (3-channel) input, " if model.in_channels == 3 else ""
    return (
        f"PlanktonNet: {colour}3x3 stem ({model.stem[0].out_channels} ch) + {len(widths)} "
        f"residual stages {widths} (stride 2 each, BatchNorm, ReLU) + global average pooling + "
        f"linear; in-graph normalisation and temperature-scaled softmax; "
        f"{params / 1e6:.2f} M parameters"
    )


__all__ = [
    "DEFAULT_WIDTHS",
    "VIEW_COUNTS",
    "PlanktonNet",
    "WithFeatures",
    "check_views",
    "describe",
    "dihedral_views",
    "stage_stats",
    "view_mean",
]
