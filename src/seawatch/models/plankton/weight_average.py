"""An exponential moving average of a network's weights while it trains (Polyak averaging).

The averaged weights sit in a flatter, better-generalising part of the loss surface than the
last step's (Polyak & Juditsky 1992; Tarvainen & Valpola 2017's mean teacher; the EMA of
FixMatch and Noisy Student); with few labels and noisy pseudo-labels the last steps' noise
is what the average removes. BatchNorm running statistics are averaged the same way. torch
only.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """``average = decay * average + (1 - decay) * weights`` after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            msg = f"weight-average decay must be in (0, 1), got {decay}"
            raise ValueError(msg)
        self.decay = decay
        self.average = {
            name: value.detach().clone()
            for name, value in model.state_dict().items()
            if value.dtype.is_floating_point
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights and BatchNorm statistics into the average."""
        for name, value in model.state_dict().items():
            if name in self.average:
                self.average[name].mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (integer buffers are left as they are)."""
        model.load_state_dict(self.average, strict=False)


__all__ = ["WeightAverage"]
