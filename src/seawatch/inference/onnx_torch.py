"""An ONNX graph run by torch: what lets the PyTorch CUDA backend serve every model artifact
from its ``model.onnx`` alone, with no torch weights file and no network class.

:func:`load_onnx_graph` returns a ``torch.nn.Module`` whose ``forward`` walks the graph's
nodes in order, each by the torch operations of :data:`~.onnx_torch_ops.OPS` (the operator
subset the seawatch graphs use); a graph with any other operator is refused at load, naming
it. Floating-point initializers and constants are buffers (they follow ``.to(device)``);
integer ones (shapes, indices, axes) stay Python-side on the CPU, so shape arithmetic never
waits on the GPU and a forward pass can be captured in a CUDA graph. torch and onnx are
imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.errors import BackendError
from seawatch.inference.onnx_torch_ops import OPS

_CONSTANT_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")


def unsupported_ops(onnx_path: Path) -> list[str]:
    """The graph's operators the torch runner does not implement (empty: it can run it)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return sorted({n.op_type for n in graph.node} - set(OPS) - {"Constant"})


def _constant(node: Any) -> np.ndarray:
    from onnx import helper, numpy_helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for name in _CONSTANT_ATTRS:
        if name in attrs:
            value = attrs[name]
            return numpy_helper.to_array(value) if name == "value" else np.array(value)
    msg = f"Constant node {node.name!r} has no value the torch runner can read"
    raise BackendError(msg)


def load_onnx_graph(onnx_path: Path) -> Any:
    """``model.onnx`` as a ``torch.nn.Module`` (on the CPU; move it with ``.to``)."""
    import onnx
    import torch
    from onnx import helper, numpy_helper

    missing = unsupported_ops(onnx_path)
    if missing:
        msg = (
            f"the torch runner cannot run {onnx_path}: operators {', '.join(missing)} are not "
            "implemented (seawatch.inference.onnx_torch_ops.OPS); serve it with onnxruntime "
            "or tensorrt"
        )
        raise BackendError(msg)
    graph = onnx.load(str(onnx_path)).graph

    class OnnxGraph(torch.nn.Module):
        """The graph's nodes, run in order; outputs in the graph's order."""

        def __init__(self) -> None:
            super().__init__()
            self._fixed: dict[str, Any] = {}  # integer constants (CPU) by tensor name
            self._buffers_by_name: dict[str, str] = {}  # float constants: buffer by name
            arrays = [(i.name, numpy_helper.to_array(i)) for i in graph.initializer]
            self._nodes = []
            for node in graph.node:
                if node.op_type == "Constant":
                    arrays.append((node.output[0], _constant(node)))
                    continue
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                if node.op_type == "ConstantOfShape" and "value" in attrs:
                    attrs["value"] = numpy_helper.to_array(attrs["value"])
                self._nodes.append((OPS[node.op_type], attrs, list(node.input), node.output[0]))
            for index, (name, array) in enumerate(arrays):
                tensor = torch.from_numpy(np.array(array, copy=True))
                if tensor.is_floating_point():
                    self.register_buffer(f"const{index}", tensor, persistent=False)
                    self._buffers_by_name[name] = f"const{index}"
                else:
                    self._fixed[name] = tensor
            self._input = graph.input[0].name
            self._outputs = [o.name for o in graph.output]

        def forward(self, x: Any) -> tuple[Any, ...]:
            values = dict(self._fixed)
            values.update((n, getattr(self, b)) for n, b in self._buffers_by_name.items())
            values[self._input] = x
            for op, attrs, inputs, output in self._nodes:
                args = [values[i] if i else None for i in inputs]
                while args and args[-1] is None:
                    args.pop()
                values[output] = op(attrs, *args)
            return tuple(values[name] for name in self._outputs)

    multi = [n.op_type for n in graph.node if len(n.output) > 1]
    if multi:
        msg = f"the torch runner runs single-output nodes only; {onnx_path} has {multi[:3]}"
        raise BackendError(msg)
    return OnnxGraph().eval()


__all__ = ["load_onnx_graph", "unsupported_ops"]
