"""Network building blocks shared by the task networks (torch)."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Convolution (no bias) + BatchNorm + ReLU, padded to keep the size at stride 1."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """A ResNet basic block: two 3x3 convolutions with a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, stride)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


def init_residual_weights(network: nn.Module) -> None:
    """He-normal convolutions, unit BatchNorm, and the last BatchNorm of every residual
    branch zeroed, so each :class:`ResidualBlock` starts as the identity."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in network.modules():
        if isinstance(module, ResidualBlock):
            nn.init.zeros_(module.conv2[1].weight)


def fold_batchnorm(network: nn.Module) -> list[nn.Conv2d]:
    """Replace each Conv2d(bias=False) + BatchNorm2d pair of a ``Sequential`` by
    Conv2d(bias=True) + Identity, as the ONNX exporter's constant folding does; return the new
    convolutions in the order the modules are registered (the order a plain network runs
    them). Loading an exported graph's folded weights into them rebuilds the network, with
    its BatchNorm frozen (what fine-tuning from the graph then trains)."""
    convs = []
    for module in network.modules():
        if isinstance(module, nn.Sequential) and len(module) >= 2:
            conv, norm = module[0], module[1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                folded = nn.Conv2d(
                    conv.in_channels,
                    conv.out_channels,
                    conv.kernel_size,
                    stride=conv.stride,
                    padding=conv.padding,
                    bias=True,
                )
                module[0], module[1] = folded, nn.Identity()
                convs.append(folded)
    return convs


__all__ = ["ResidualBlock", "conv_bn", "fold_batchnorm", "init_residual_weights"]
