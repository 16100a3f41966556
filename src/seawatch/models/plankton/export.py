"""ONNX export of the plankton network: one input ``image`` (N x C x S x S, 0..255; C is 1 for
gray, 3 for colour; S the card's ``input.size``), three
outputs ``probs`` (N x C), ``features`` (N x D, the penultimate layer) and ``stage3`` (N x
2C', each channel's mean and standard deviation over the third stage's map), the last two
read by the out-of-distribution score; dynamic batch axis. With ``views`` 4 or 8 the graph
averages each crop's dihedral views (:class:`~.network.WithFeatures`; the card's
``training.test_time_views``). See :mod:`seawatch.models.onnx_export`.

Graphs exported before the ``features`` output existed have ``probs`` alone; the daemon
serves them with the softmax threshold only (:mod:`seawatch.contracts.ood`). Graphs with
``(probs, features)`` serve scorers fitted without the stage-3 inputs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seawatch.models.onnx_export import check_parity, ort_session
from seawatch.models.onnx_export import export_onnx as _export
from seawatch.models.plankton.network import PlanktonNet, WithFeatures

INPUT_NAME, OUTPUT_NAME, FEATURES_NAME, STAGE3_NAME = "image", "probs", "features", "stage3"
OUTPUT_NAMES = (OUTPUT_NAME, FEATURES_NAME, STAGE3_NAME)


def export_onnx(
    model: PlanktonNet,
    path: Path,
    *,
    size: int,
    channels: int = 1,
    views: int = 1,
    opset: int = 17,
) -> Path:
    """Export a classifier mapping float32 N x channels x size x size to (probabilities,
    features, pooled stage-3 statistics), averaged over ``views`` dihedral views."""
    example = torch.zeros(2, channels, size, size)
    return _export(
        WithFeatures(model, views),
        path,
        example,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        opset=opset,
    )


def exported(model: PlanktonNet, views: int = 1) -> WithFeatures:
    """The module the graph was exported from (for :func:`check_parity`)."""
    return WithFeatures(model, views)


__all__ = [
    "FEATURES_NAME",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "OUTPUT_NAMES",
    "STAGE3_NAME",
    "check_parity",
    "export_onnx",
    "exported",
    "ort_session",
]
