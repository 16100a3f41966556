"""ONNX export of the plankton network: one input ``image`` (N x 1 x S x S, 0..255), one
output ``probs`` (N x C), dynamic batch axis. See :mod:`seawatch.models.onnx_export`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seawatch.models.onnx_export import check_parity, ort_session
from seawatch.models.onnx_export import export_onnx as _export

INPUT_NAME, OUTPUT_NAME = "image", "probs"


def export_onnx(model: nn.Module, path: Path, *, size: int, opset: int = 17) -> Path:
    """Export a classifier mapping float32 N x 1 x size x size to probabilities."""
    example = torch.zeros(2, 1, size, size)
    return _export(
        model, path, example, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset=opset
    )


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "check_parity", "export_onnx", "ort_session"]
