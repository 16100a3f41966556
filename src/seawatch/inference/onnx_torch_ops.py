"""The ONNX operators :mod:`seawatch.inference.onnx_torch` runs, each as torch operations.

Every op takes the node's attributes (a dict) and its inputs (torch tensors; None for an
empty optional input) and returns its output. The subset is what the seawatch graphs use
(opset 13-17). Integer tensors (shapes, indices, axes) are read as Python ints, so shape
arithmetic stays on the CPU and never waits on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from seawatch.contracts.errors import BackendError

Op = Callable[..., Any]  # (attributes, *inputs) -> output


def _torch() -> Any:
    import torch

    return torch


def _f() -> Any:
    import torch.nn.functional as functional

    return functional


def _ints(value: Any) -> list[int]:
    """A CPU tensor, array or list of integers as Python ints."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(v) for v in (value if isinstance(value, list | tuple) else [value])]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reduce(fn: str) -> Op:
    def op(attrs: dict[str, Any], x: Any, axes: Any = None) -> Any:
        torch = _torch()
        dims = list(attrs["axes"]) if "axes" in attrs else None
        dims = _ints(axes) if dims is None and axes is not None else dims
        keep = bool(attrs.get("keepdims", 1))
        if dims is None:
            if attrs.get("noop_with_empty_axes", 0):
                return x
            dims = list(range(x.dim()))
        if fn == "sum":
            return torch.sum(x, dim=dims, keepdim=keep)
        if fn == "mean":
            return torch.mean(x, dim=dims, keepdim=keep)
        if fn == "l2":
            return torch.sqrt(torch.sum(x * x, dim=dims, keepdim=keep))
        return torch.amax(x, dim=dims, keepdim=keep)

    return op


def _spatial_pads(pads: list[int]) -> list[int]:
    """ONNX pads (begin of each spatial axis, then ends) as torch's F.pad list (last axis
    first, begin then end)."""
    half = len(pads) // 2
    return [p for i in reversed(range(half)) for p in (pads[i], pads[i + half])]


def _conv(attrs: dict[str, Any], x: Any, w: Any, b: Any = None) -> Any:
    if _text(attrs.get("auto_pad", "NOTSET")) != "NOTSET":
        raise BackendError("Conv auto_pad is not supported by the torch runner")
    spatial = w.dim() - 2
    pads = list(attrs.get("pads", [0] * (2 * spatial)))
    if pads[:spatial] != pads[spatial:]:  # asymmetric: pad first, convolve unpadded
        x = _f().pad(x, _spatial_pads(pads))
        pads = [0] * (2 * spatial)
    conv = {1: _f().conv1d, 2: _f().conv2d, 3: _f().conv3d}[spatial]
    return conv(
        x,
        w,
        b,
        stride=list(attrs.get("strides", [1] * spatial)),
        padding=pads[:spatial],
        dilation=list(attrs.get("dilations", [1] * spatial)),
        groups=int(attrs.get("group", 1)),
    )


def _gemm(attrs: dict[str, Any], a: Any, b: Any, c: Any = None) -> Any:
    a = a.transpose(0, 1) if attrs.get("transA", 0) else a
    b = b.transpose(0, 1) if attrs.get("transB", 0) else b
    out = float(attrs.get("alpha", 1.0)) * (a @ b)
    return out if c is None else out + float(attrs.get("beta", 1.0)) * c


def _clamp_index(value: int, size: int) -> int:
    return max(0, min(value + size if value < 0 else value, size))


def _slice(
    attrs: dict[str, Any], x: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None
) -> Any:
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= x.dim()
        size = x.shape[axis]
        if step > 0:
            index = slice(_clamp_index(start, size), _clamp_index(end, size), step)
        else:  # a negative step (a flip, as test-time views are made): slice the flipped axis
            first = min(start + size if start < 0 else start, size - 1)
            last = max(end + size if end < 0 else end, -1)
            x = x.flip(axis)
            index = slice(size - 1 - first, size - 1 - last, -step)
        x = x[(slice(None),) * axis + (index,)]
    return x


def _resize(
    attrs: dict[str, Any], x: Any, roi: Any = None, scales: Any = None, sizes: Any = None
) -> Any:
    mode = _text(attrs.get("mode", "nearest"))
    transform = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
    if sizes is not None and sizes.numel():
        kwargs: dict[str, Any] = {"size": _ints(sizes)[2:]}
    else:
        kwargs = {"scale_factor": [float(s) for s in scales.tolist()][2:]}
    if mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        kind = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.dim() - 2]
        align = transform == "align_corners"
        return _f().interpolate(x, mode=kind, align_corners=align, **kwargs)
    if mode == "nearest" and transform == "asymmetric":
        return _f().interpolate(x, mode="nearest", **kwargs)
    msg = f"Resize mode={mode} coordinate_transformation_mode={transform} is not supported"
    raise BackendError(msg)


def _pad(attrs: dict[str, Any], x: Any, pads: Any, value: Any = None, axes: Any = None) -> Any:
    pads = _ints(pads)
    half = len(pads) // 2
    dims = _ints(axes) if axes is not None else list(range(half))
    amount = {d % x.dim(): (pads[i], pads[i + half]) for i, d in enumerate(dims)}
    padded = sorted(d for d, p in amount.items() if p != (0, 0))
    if not padded:
        return x
    first = padded[0]  # pad the trailing axes from the first padded one on
    flat = [p for d in reversed(range(first, x.dim())) for p in amount.get(d, (0, 0))]
    mode = _text(attrs.get("mode", "constant"))
    if mode == "constant":
        fill = 0.0 if value is None or not value.numel() else float(value.reshape(-1)[0])
        return _f().pad(x, flat, mode="constant", value=fill)
    if mode not in ("edge", "reflect") or x.dim() - first > 3:
        raise BackendError(f"Pad mode {mode} over {x.dim() - first} axes is not supported")
    lead, tail = x.shape[:first], x.shape[first:]
    y = _f().pad(x.reshape(-1, 1, *tail), flat, mode={"edge": "replicate"}.get(mode, mode))
    return y.reshape(*lead, *y.shape[2:])


def _cast(attrs: dict[str, Any], x: Any) -> Any:
    torch = _torch()
    dtypes = {
        1: torch.float32,
        6: torch.int32,
        7: torch.int64,
        9: torch.bool,
        10: torch.float16,
        11: torch.float64,
    }
    to = int(attrs["to"])
    if to not in dtypes:
        raise BackendError(f"Cast to ONNX type {to} is not supported by the torch runner")
    return x.to(dtypes[to])


def _align(a: Any, b: Any) -> tuple[Any, Any]:
    """Two operands on one device: a CPU scalar joins any device; a CPU tensor (shape
    arithmetic meeting data) is moved to the other's device."""
    if a.device == b.device or (a.device.type == "cpu" and a.dim() == 0):
        return a, b
    if b.device.type == "cpu" and b.dim() == 0:
        return a, b
    return (a.to(b.device), b) if a.device.type == "cpu" else (a, b.to(a.device))


def _binary(fn: str) -> Op:
    def op(attrs: dict[str, Any], a: Any, b: Any) -> Any:
        torch = _torch()
        a, b = _align(a, b)
        if fn == "div" and not a.is_floating_point() and not b.is_floating_point():
            return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates
        return getattr(torch, fn)(a, b)

    return op


def _max(attrs: dict[str, Any], *xs: Any) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out, x = _align(out, x)
        out = _torch().maximum(out, x)
    return out


def _clip(attrs: dict[str, Any], x: Any, low: Any = None, high: Any = None) -> Any:
    low = None if low is None else float(low)
    return x.clamp(min=low, max=None if high is None else float(high))


def _batch_norm(attrs: dict[str, Any], x: Any, scale: Any, bias: Any, mean: Any, var: Any) -> Any:
    eps = float(attrs.get("epsilon", 1e-5))
    return _f().batch_norm(x, mean, var, scale, bias, training=False, eps=eps)


def _reshape(attrs: dict[str, Any], x: Any, shape: Any) -> Any:
    dims = _ints(shape)
    if not attrs.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _gather(attrs: dict[str, Any], x: Any, indices: Any) -> Any:
    axis = int(attrs.get("axis", 0)) % x.dim()
    picks = [i + x.shape[axis] if i < 0 else i for i in _ints(indices)]
    if indices.dim() == 0:
        return x.select(axis, picks[0])
    parts = [x.narrow(axis, i, 1) for i in picks]
    out = _torch().cat(parts, dim=axis)
    return out.reshape((*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :]))


def _constant_of_shape(attrs: dict[str, Any], shape: Any) -> Any:
    torch = _torch()
    fill = np.array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    dtype = torch.from_numpy(fill.copy()).dtype
    return torch.full(_ints(shape), fill.reshape(-1)[0].item(), dtype=dtype)


def _unsqueeze(attrs: dict[str, Any], x: Any, axes: Any = None) -> Any:
    dims = _ints(axes) if axes is not None else list(attrs["axes"])
    rank = x.dim() + len(dims)
    for axis in sorted(d % rank for d in dims):
        x = x.unsqueeze(axis)
    return x


def _flatten(attrs: dict[str, Any], x: Any) -> Any:
    axis = int(attrs.get("axis", 1)) % max(x.dim(), 1)
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _concat(attrs: dict[str, Any], *xs: Any) -> Any:
    devices = [x.device for x in xs if x.device.type != "cpu"]
    xs = tuple(x.to(devices[0]) if devices and x.device.type == "cpu" else x for x in xs)
    return _torch().cat(xs, dim=int(attrs["axis"]))


def _expand(attrs: dict[str, Any], x: Any, shape: Any) -> Any:
    return x * _torch().ones(_ints(shape), dtype=x.dtype, device=x.device)


OPS: dict[str, Op] = {
    "Identity": lambda attrs, x: x,
    "Add": _binary("add"),
    "Sub": _binary("sub"),
    "Mul": _binary("mul"),
    "Div": _binary("div"),
    "Pow": _binary("pow"),
    "Max": _max,
    "Relu": lambda attrs, x: _torch().relu(x),
    "Sqrt": lambda attrs, x: _torch().sqrt(x),
    "Clip": _clip,
    "Softmax": lambda attrs, x: _torch().softmax(x, dim=int(attrs.get("axis", -1))),
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": lambda attrs, a, b: _torch().matmul(a, b),
    "BatchNormalization": _batch_norm,
    "GlobalAveragePool": lambda attrs, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "ReduceSum": _reduce("sum"),
    "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"),
    "ReduceL2": _reduce("l2"),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": lambda attrs, x: x.permute(*attrs.get("perm", reversed(range(x.dim())))),
    "Concat": _concat,
    "Unsqueeze": _unsqueeze,
    "Shape": lambda attrs, x: _torch().tensor(list(x.shape), dtype=_torch().int64),
    "Gather": _gather,
    "Cast": _cast,
    "ConstantOfShape": _constant_of_shape,
    "Expand": _expand,
    "Slice": _slice,
    "Resize": _resize,
    "Pad": _pad,
}

__all__ = ["OPS", "Op"]
