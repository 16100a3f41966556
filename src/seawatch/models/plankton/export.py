"""ONNX export of the plankton network: one input ``image`` (N x C x S x S, 0..255; C is 1 for
gray, 3 for colour; S the card's ``input.size``), two
outputs ``probs`` (N x C) and ``features`` (N x D, the penultimate layer the
out-of-distribution score reads), dynamic batch axis. See :mod:`seawatch.models.onnx_export`.

Graphs exported before the ``features`` output existed have ``probs`` alone; the daemon
serves them with the softmax threshold only (:mod:`seawatch.contracts.ood`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from seawatch.models.onnx_export import check_parity, ort_session
from seawatch.models.onnx_export import export_onnx as _export
from seawatch.models.plankton.network import PlanktonNet, WithFeatures

INPUT_NAME, OUTPUT_NAME, FEATURES_NAME = "image", "probs", "features"
OUTPUT_NAMES = (OUTPUT_NAME, FEATURES_NAME)


def export_onnx(
    model: PlanktonNet, path: Path, *, size: int, channels: int = 1, opset: int = 17
) -> Path:
    """Export a classifier mapping float32 N x channels x size x size to (probabilities,
    features)."""
    example = torch.zeros(2, channels, size, size)
    return _export(
        WithFeatures(model),
        path,
        example,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        opset=opset,
    )


def exported(model: PlanktonNet) -> WithFeatures:
    """The module the graph was exported from (for :func:`check_parity`)."""
    return WithFeatures(model)


__all__ = [
    "FEATURES_NAME",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "OUTPUT_NAMES",
    "check_parity",
    "export_onnx",
    "exported",
    "ort_session",
]
