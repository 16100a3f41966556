"""Where fine-tuning on a user's fish starts: the committed model's weights, a graph, or none.

``--pretrained auto`` starts from the committed fish model (``models/fish/model.onnx``),
``none`` from a fresh network, and a path from any fish artifact's graph (its directory or its
``model.onnx``: an earlier fine-tuning's output, say). Nothing is downloaded.

Only the graph holds the fish model's weights. The exporter folded each BatchNorm into the
convolution before it, so :func:`rebuild_fishnet` builds :class:`FishNet` with those folds
(``Conv2d`` with a bias, ``Identity`` for the BatchNorm: a *frozen* BatchNorm, the usual way to
fine-tune on small batches) and loads the folded weights in the order the convolutions run,
the head's linear layer (the graph's ``MatMul``, transposed) and its BatchNorm1d by name.
The rebuilt network must give the graph's embeddings (ONNX Runtime against torch,
:data:`PARITY_ATOL`) before anything trains: that is the proof it is the same model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from seawatch.contracts.card import ONNX_FILE, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.models.blocks import fold_batchnorm
from seawatch.models.fish.network import FishNet
from seawatch.models.onnx_export import check_parity

DEFAULT_START = Path("models/fish")
PARITY_ATOL = 1e-4
_HEAD_NORM = ("weight", "bias", "running_mean", "running_var")


def start_graph(spec: str, default: Path = DEFAULT_START) -> Path | None:
    """The graph ``--pretrained`` names: ``auto`` the committed model's, ``none`` None, else
    the given ``model.onnx`` or artifact directory. ConfigError when it is not there."""
    if spec == "none":
        return None
    path = Path(default if spec == "auto" else spec)
    graph = path / ONNX_FILE if path.is_dir() else path
    if not graph.is_file():
        what = "the committed fish model" if spec == "auto" else "a fish model"
        msg = (
            f"--pretrained {spec}: no {graph}; give {what}'s directory or its {ONNX_FILE} "
            "(--pretrained none trains from scratch)"
        )
        raise ConfigError(msg)
    return graph


def rebuild_fishnet(graph_path: Path) -> FishNet:
    """The torch :class:`FishNet` (eval mode, BatchNorm folded) of a fish ``model.onnx``."""
    graph = onnx.load(str(graph_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [
        (inits[n.input[1]], inits[n.input[2]])
        for n in graph.node
        if n.op_type == "Conv" and len(n.input) == 3 and n.input[1] in inits
    ]
    matmuls = [inits[n.input[1]] for n in graph.node if n.op_type == "MatMul"]
    needed = ["mean", "std", *(f"head.3.{k}" for k in _HEAD_NORM)]
    missing = [k for k in needed if k not in inits]
    if missing or len(matmuls) != 1 or len(convs) < 3:
        msg = (
            f"{graph_path}: not a fish re-ID graph (missing {missing}, {len(matmuls)} MatMul, "
            f"{len(convs)} convolutions); give a model.onnx written by `seawatch train fish`"
        )
        raise ConfigError(msg)
    model = _network(graph_path, inits, convs, matmuls[0])
    folded = fold_batchnorm(model)
    if len(folded) != len(convs):
        msg = f"{graph_path}: {len(convs)} convolutions, the network has {len(folded)}"
        raise ConfigError(msg)
    with torch.no_grad():
        for module, (weight, bias) in zip(folded, convs, strict=True):
            _copy(module.weight, weight, graph_path)
            _copy(module.bias, bias, graph_path)
        linear, norm = model.head[2], model.head[3]
        _copy(linear.weight, matmuls[0].T, graph_path)
        for key in _HEAD_NORM:
            _copy(getattr(norm, key), inits[f"head.3.{key}"], graph_path)
    return model.eval()


def _network(path: Path, inits: dict, convs: list, matmul: np.ndarray) -> FishNet:
    """A FishNet of the graph's widths, strides, input size and normalisation."""
    graph = onnx.load(str(path)).graph
    first_convs = [  # the first convolution of each residual block
        n for n in graph.node if n.op_type == "Conv" and "/conv1/" in n.name + n.output[0]
    ]
    widths = [int(convs[0][0].shape[0])] + [int(inits[n.input[1]].shape[0]) for n in first_convs]
    strides = [
        int(next((a.ints[0] for a in n.attribute if a.name == "strides"), 1)) for n in first_convs
    ]
    reduce = int(convs[-1][0].shape[0])
    height, width = _input_size(path, 2 * int(np.prod(strides)), matmul.shape[0] // reduce)
    return FishNet(
        height=height,
        width=width,
        embedding_dim=int(matmul.shape[1]),
        widths=widths,
        strides=strides,
        reduce=reduce,
        mean=[float(v) for v in inits["mean"].ravel()],
        std=[float(v) for v in inits["std"].ravel()],
    )


def _input_size(path: Path, stride: int, cells: int) -> tuple[int, int]:
    """The graph's fixed input height and width (they fix the positional head's size)."""
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    height, width = (int(d.dim_value) for d in dims[2:4])
    if height * width // (stride * stride) != cells:
        msg = f"{path}: input {height} x {width} does not fit a head of {cells} cells"
        raise ConfigError(msg)
    return height, width


def _copy(target: torch.Tensor, value: np.ndarray, path: Path) -> None:
    if tuple(target.shape) != tuple(value.shape):
        msg = f"{path}: graph tensor {value.shape} does not fit the network's {target.shape}"
        raise ConfigError(msg)
    target.copy_(torch.from_numpy(np.array(value, np.float32)))


def start_info(spec: str, graph: Path | None, model: FishNet | None, images: np.ndarray) -> dict:
    """What the card records of the start; a rebuilt ``model`` is first checked against its
    ``graph`` on ``images`` (prepared N x 3 x H x W): BackendError when it does not reproduce
    the graph's embeddings."""
    if graph is None or model is None:
        return {"pretrained": "none", "start": "fresh FishNet (He initialisation)"}
    parity = check_parity(model, graph, images[:8].astype(np.float32), atol=PARITY_ATOL)
    return {
        "pretrained": spec,
        "start": str(graph),
        "sha256": sha256_file(graph),
        "rebuilt_vs_graph_max_abs_diff": float(f"{parity:.3g}"),
        "batchnorm": "folded into the convolutions as in the graph (frozen while fine-tuning)",
    }


__all__ = ["DEFAULT_START", "PARITY_ATOL", "rebuild_fishnet", "start_graph", "start_info"]
