"""ONNX export of the plankton network, with a parity check against ONNX Runtime.

The graph has one input ``image`` (float32 N x 1 x size x size, values 0..255) and one
output ``probs`` (N x C), with a dynamic batch axis, so TensorRT engines can be built for any
batch profile and ONNX Runtime can run any batch size.

The TorchScript exporter (``dynamo=False``) is used on purpose: with torch 2.13 and
onnxscript 0.7 the dynamo exporter cannot down-convert this graph to opset 17 (it falls back
to 18 with warnings) and takes ~10x longer; the TorchScript exporter writes a clean,
single-file opset-17 graph. Its deprecation notice is silenced here only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from seawatch.errors import BackendError

INPUT_NAME, OUTPUT_NAME = "image", "probs"


def export_onnx(model: nn.Module, path: Path, *, size: int, opset: int = 17) -> Path:
    """Export ``model`` (in eval mode, on CPU) to ``path`` with a dynamic batch axis.

    The model must map float32 N x 1 x size x size to probabilities; the file is checked
    with ``onnx.checker`` before it is returned.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    dummy = torch.zeros(2, 1, size, size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript exporter"
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(path))
    return path


def ort_session(path: Path, *, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(
    model: nn.Module, onnx_path: Path, x: np.ndarray | torch.Tensor, *, atol: float = 1e-4
) -> float:
    """Max absolute difference between torch and ONNX Runtime outputs on batch ``x``.

    Raises :class:`BackendError` when it exceeds ``atol``: the exported graph does not
    compute what the network computes and must not be shipped.
    """
    batch = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    batch = batch.astype(np.float32, copy=False)
    model = model.cpu().eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    (actual,) = ort_session(onnx_path).run([OUTPUT_NAME], {INPUT_NAME: batch})
    if actual.shape != expected.shape:
        msg = f"ONNX output shape {actual.shape} != torch output shape {expected.shape}"
        raise BackendError(msg)
    diff = float(np.max(np.abs(actual - expected))) if batch.size else 0.0
    if not diff <= atol:
        msg = (
            f"ONNX Runtime and torch disagree on {onnx_path}: max |diff| {diff:.3g} > {atol:g}; "
            "re-export with the default opset or check for ops ONNX Runtime runs differently"
        )
        raise BackendError(msg)
    return diff


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "check_parity", "export_onnx", "ort_session"]
