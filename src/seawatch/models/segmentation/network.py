"""The segmentation networks (torch): a small U-Net and the pseudo-mask quality regressor.

:class:`SegNet` maps a frame's flat-field signal (objects bright, background ~0, 0..255; see
:func:`seawatch.ingest.segment_model.model_input`) at half resolution to two maps: the
probability that a pixel belongs to an object (**foreground**) and its **centre-ness** (its
distance to its object's edge over the object's largest: a peak in each object, a valley
where two touch, where the instances are cut apart). Both are sigmoids inside the graph.

:class:`QualityNet` looks at one pseudo-instance (a square window around it: the signal, the
two probability maps and the instance's mask) and regresses the IoU that instance has with
the true object; the seed-001 "quality classifier" that filters pseudo-labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seawatch.ingest.segment_model import QUALITY_CHANNELS, SIGNAL_UNIT
from seawatch.models.blocks import conv_bn


def _double(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(c_in, c_out), conv_bn(c_out, c_out))


class SegNet(nn.Module):
    """A lean U-Net: a stride-2 stem, so the deep levels run at 1/4 to 1/16 of the input
    resolution (two 3x3 conv-BN-ReLU per level down, max-pool between, one conv per level
    up after nearest-neighbour upsampling and skip concatenation), then a full-resolution
    refinement from the input itself and a 1x1 head of two sigmoids. Most of the work is at
    low resolution: what keeps a full frame affordable on a CPU.

    Cheaper shapes (``seawatch train segmentation --widths/--fine/--downsample``): fewer
    channels per level; ``fine=0``, no refinement (the head reads the stem's level); and
    ``downsample`` 2 or 4, the whole network at that fraction of its input (average-pooled
    first, the maps enlarged back bilinearly), so the maps keep the input's size."""

    def __init__(
        self,
        widths: tuple[int, ...] = (12, 24, 48, 64),
        fine: int = 8,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        if len(widths) < 2 or min(widths) < 1:
            msg = f"SegNet needs at least two levels of >= 1 channel, got widths={widths}"
            raise ValueError(msg)
        if fine < 0 or downsample not in (1, 2, 4):
            msg = (
                f"SegNet needs fine >= 0 channels (0: no refinement) and downsample 1, 2 or 4; "
                f"got fine={fine}, downsample={downsample}"
            )
            raise ValueError(msg)
        self.widths = tuple(widths)
        self.fine_width = fine
        self.downsample = downsample
        self.stem = nn.Sequential(conv_bn(1, widths[0], stride=2), conv_bn(widths[0], widths[0]))
        self.down = nn.ModuleList(_double(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        self.up = nn.ModuleList(
            conv_bn(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        if fine:
            self.fine_in = conv_bn(1, fine // 2 + 2)
            self.fine = conv_bn(widths[0] + fine // 2 + 2, fine)
        self.head = nn.Conv2d(fine or widths[0], 2, 1)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** len(self.widths) * self.downsample

    @property
    def options(self) -> dict[str, object]:
        """The constructor's arguments (for the card, and to build the same net again)."""
        return {"widths": list(self.widths), "fine": self.fine_width, "downsample": self.downsample}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1 x H x W signal (0..255) -> N x 2 x H x W logits (foreground, centre).

        With ``downsample`` > 1 the input is average-pooled by that factor first and the
        logits enlarged back bilinearly (the maps keep the input's size: the daemon's
        contract); without the ``fine`` refinement the head reads the stem's level and its
        logits are enlarged two times more."""
        x = x * SIGNAL_UNIT
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        h = self.stem(x)
        skips = [h]
        for block in self.down:
            h = block(F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skip], 1))
        enlarge = self.downsample
        if self.fine_width:
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            out = self.head(self.fine(torch.cat([h, self.fine_in(x)], 1)))
        else:
            out, enlarge = self.head(h), 2 * enlarge
        if enlarge > 1:
            out = F.interpolate(
                out, scale_factor=float(enlarge), mode="bilinear", align_corners=False
            )
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps N x 2 x H x W: foreground probability, centre-ness."""
        return torch.sigmoid(self.logits(x))


class QualityNet(nn.Module):
    """Predicted IoU (0..1) of a pseudo-instance from its window
    (:func:`seawatch.ingest.segment_model.quality_windows`): four conv-BN-ReLU stages, global
    average pooling, a two-layer head and a sigmoid."""

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(QUALITY_CHANNELS, width),
            nn.MaxPool2d(2),
            conv_bn(width, 2 * width),
            nn.MaxPool2d(2),
            conv_bn(2 * width, 4 * width),
            nn.MaxPool2d(2),
            conv_bn(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(4 * width, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """N x 6 x S x S windows -> predicted IoU (N)."""
        return torch.sigmoid(self.head(self.features(window))).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["QualityNet", "SegNet", "count_parameters"]
