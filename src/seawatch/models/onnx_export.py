"""ONNX export with a dynamic batch axis, and the torch-vs-ONNX Runtime parity check.

Every task exports the same way: named inputs and outputs, axis 0 dynamic on all of them,
opset 17, checked by ``onnx.checker``. The TorchScript exporter (``dynamo=False``) is used on
purpose: with torch 2.13 and onnxscript 0.7 the dynamo exporter cannot down-convert these
graphs to opset 17 and takes ~10x longer; its deprecation notice is silenced here only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from seawatch.contracts.errors import BackendError


def export_onnx(
    model: nn.Module,
    path: Path,
    example: torch.Tensor | Sequence[torch.Tensor],
    *,
    input_names: Sequence[str] = ("image",),
    output_names: Sequence[str] = ("probs",),
    opset: int = 17,
    spatial: bool = False,
) -> Path:
    """Export ``model`` (eval mode, CPU) to ``path``; axis 0 of every input/output is dynamic,
    and with ``spatial`` axes 2 and 3 too (a fully convolutional network, any frame size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    args = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    dims = {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}
    axes = {name: dict(dims) for name in [*input_names, *output_names]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript exporter"
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=axes,
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
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(
    model: nn.Module,
    onnx_path: Path,
    x: np.ndarray | torch.Tensor,
    *,
    atol: float = 1e-4,
    rtol: float = 0.0,
) -> float:
    """Max absolute difference between torch and ONNX Runtime over all outputs on batch ``x``.

    The model may return one tensor or a tuple; outputs are compared in order. Raises
    :class:`BackendError` when a shape differs or a value differs by more than
    ``atol + rtol * |torch value|``: that graph must not be shipped.
    """
    batch = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    batch = batch.astype(np.float32, copy=False)
    model = model.cpu().eval()
    with torch.no_grad():
        out = model(torch.from_numpy(batch))
    expected = [t.numpy() for t in (out if isinstance(out, tuple | list) else (out,))]
    session = ort_session(onnx_path)
    actual = session.run(None, {session.get_inputs()[0].name: batch})
    if len(actual) != len(expected):
        msg = f"ONNX graph has {len(actual)} outputs, torch model {len(expected)}"
        raise BackendError(msg)
    worst = 0.0
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if a.shape != e.shape:
            msg = f"ONNX output {index} shape {a.shape} != torch output shape {e.shape}"
            raise BackendError(msg)
        if not a.size:
            continue
        excess = np.abs(a - e) - (atol + rtol * np.abs(e))
        diff = float(np.max(np.abs(a - e)))
        worst = max(worst, diff)
        if not float(np.max(excess)) <= 0.0:
            msg = (
                f"ONNX Runtime and torch disagree on {onnx_path} output {index}: max |diff| "
                f"{diff:.3g} > {atol:g} + {rtol:g}*|x|; re-export with the default opset or "
                "check for ops ONNX Runtime runs differently"
            )
            raise BackendError(msg)
    return worst


__all__ = ["check_parity", "export_onnx", "ort_session"]
