"""ONNX export of the fish embedding network: input ``image`` (N x 3 x H x W RGB, 0..255),
output ``embedding`` (N x D, L2-normalised), dynamic batch axis. The inpainting decoder is not
part of the graph. See :mod:`seawatch.models.onnx_export`."""

from __future__ import annotations

from pathlib import Path

import torch

from seawatch.models.fish.network import FishNet
from seawatch.models.onnx_export import check_parity, ort_session
from seawatch.models.onnx_export import export_onnx as _export

INPUT_NAME, OUTPUT_NAME = "image", "embedding"


def export_fish(model: FishNet, path: Path, *, opset: int = 17) -> Path:
    """Export ``model`` (its ``forward``: images -> unit embeddings) to ``path``."""
    example = torch.zeros(2, 3, model.height, model.width)
    return _export(
        model, path, example, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset=opset
    )


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "check_parity", "export_fish", "ort_session"]
