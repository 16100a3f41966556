"""ONNX export of the otolith detector: input ``image`` (N x 3 x S x S RGB, 0..255), outputs
``score`` (N,) and ``heatmap`` (N x h x w), dynamic batch axis. The graph holds the teacher,
the student, the stage norms, the smoothing and the test-time views, so the served score is
the trained one. See :mod:`seawatch.models.onnx_export`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seawatch.models.onnx_export import check_parity, export_onnx
from seawatch.models.otolith.network import OtolithMKD

INPUT_NAME = "image"
OUTPUTS = ["score", "heatmap"]


def export_otolith(model: OtolithMKD, path: Path, size: int, *, opset: int = 17) -> Path:
    """Export ``model`` (its ``forward``: S x S images -> score, heat map) to ``path``."""
    example = torch.zeros(2, 3, size, size)
    return export_onnx(
        model, path, example, input_names=[INPUT_NAME], output_names=OUTPUTS, opset=opset
    )


def export_parity(
    model: OtolithMKD, path: Path, real: np.ndarray, *, seed: int
) -> dict[str, float]:
    """Largest torch-vs-ONNX Runtime difference on uniform noise and on ``real`` images
    (N x 3 x S x S)."""
    size = real.shape[-1]
    noise = np.random.default_rng(seed).uniform(0, 255, (4, 3, size, size)).astype(np.float32)
    return {
        name: float(f"{check_parity(model, path, x, atol=1e-4, rtol=1e-4):.3g}")
        for name, x in (("random", noise), ("real", real.astype(np.float32)))
    }


__all__ = ["INPUT_NAME", "OUTPUTS", "export_otolith", "export_parity"]
