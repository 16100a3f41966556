"""Which precision a TensorRT engine is built in, and how, for a given TensorRT and GPU.

TensorRT 10 is weakly typed by default: the graph stays float32 and the builder flags
``FP16``/``INT8`` let it pick lower-precision kernels (INT8 with a calibrator fed sample
images). TensorRT 11 removed those flags: networks are strongly typed, so the ONNX graph
itself must carry the precision — for FP16 the graph is converted first
(:func:`convert_onnx_to_fp16`, float32 I/O kept with Cast nodes), and INT8 needs explicit
quantization (Q/DQ nodes) in the graph; implicit calibration no longer exists.

:func:`plan_precision` decides from plain values (no GPU, no TensorRT import), so every rule
is unit-tested anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from seawatch.contracts.errors import BackendError

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

# Ops whose float inputs must stay float32 (ONNX types them float-only, or fp16 is unsafe);
# they run in float32 between Cast nodes in a converted graph.
KEEP_FP32_OPS = frozenset(
    {
        "Resize",
        "Upsample",
        "Range",
        "RoiAlign",
        "NonMaxSuppression",
        "TopK",
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "EyeLike",
    }
)
_FP16_MAX = 65504.0


@dataclass(frozen=True)
class GpuInfo:
    """A GPU as the precision rules see it."""

    name: str
    major: int
    minor: int

    @property
    def capability(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def fast_fp16(self) -> bool:
        """Full-rate FP16: sm_60/62 (P100, Jetson TX2) and every GPU from Volta (sm_70) on;
        consumer Pascal (sm_61) runs FP16 at 1/64 rate."""
        return (self.major, self.minor) in {(6, 0), (6, 2)} or self.major >= 7

    @property
    def int8(self) -> bool:
        """INT8 (DP4A or tensor cores) from sm_61 on."""
        return (self.major, self.minor) >= (6, 1)


@dataclass(frozen=True)
class PrecisionPlan:
    """How to build: the precision, TensorRT builder flags set and cleared, strong typing,
    ONNX conversion."""

    requested: str
    precision: Precision
    tensorrt_major: int
    builder_flags: tuple[str, ...]
    strongly_typed: bool
    convert_onnx_to: str | None
    calibrate: bool
    notes: tuple[str, ...] = ()
    # TensorRT enables TF32 by default (a 10-bit mantissa in FP32 matrix products, on Ampere
    # and later); an fp32 engine clears it, so fp32 means fp32 and meets its 1e-3 parity.
    cleared_flags: tuple[str, ...] = ()


def tensorrt_major(version: str) -> int:
    """``"10.3.0.26"`` -> 10; raise BackendError for a version string that is not one."""
    try:
        return int(version.split(".")[0])
    except ValueError:
        msg = f"cannot read a TensorRT major version from {version!r}"
        raise BackendError(msg) from None


def plan_precision(
    requested: str,
    tensorrt_version: str,
    gpu: GpuInfo,
    *,
    has_calibration: bool = False,
    onnx_has_qdq: bool = False,
) -> PrecisionPlan:
    """The build plan for ``requested`` (``auto``, ``fp32``, ``fp16`` or ``int8``).

    ``auto`` is FP16 where the GPU runs it at full rate, else FP32. An explicit request the
    GPU or TensorRT cannot honour raises BackendError naming the reason and the fix.
    """
    major = tensorrt_major(tensorrt_version)
    if major < 10:
        msg = (
            f"TensorRT {tensorrt_version} is not supported (needs 10 or 11, for "
            "execute_async_v3 and the named-tensor API); `pip install 'tensorrt>=10'`"
        )
        raise BackendError(msg)
    if requested not in ("auto", *PRECISIONS):
        msg = f"precision must be auto, fp32, fp16 or int8, got {requested!r}"
        raise BackendError(msg)
    weak = major == 10
    notes: list[str] = []
    if major > 11:
        notes.append(f"TensorRT {major} is newer than tested (10, 11); treated as 11")

    if requested == "auto":
        precision: Precision = "fp16" if gpu.fast_fp16 else "fp32"
        notes.append(
            f"auto: {precision} ({gpu.name} sm_{gpu.major}{gpu.minor} "
            f"{'has' if gpu.fast_fp16 else 'lacks'} full-rate FP16)"
        )
    else:
        precision = requested  # type: ignore[assignment]

    if precision == "fp16" and not gpu.fast_fp16:
        msg = (
            f"fp16 asked for, but {gpu.name} (compute capability {gpu.capability}) has no "
            "full-rate FP16; build with --precision fp32"
        )
        raise BackendError(msg)
    if precision == "int8":
        if not gpu.int8:
            msg = (
                f"int8 asked for, but {gpu.name} (compute capability {gpu.capability}) has "
                "no INT8 support (needs 6.1+); build with --precision fp16 or fp32"
            )
            raise BackendError(msg)
        if weak and not has_calibration:
            msg = (
                "int8 on TensorRT 10 needs calibration images: pass --calibration DIR (a folder "
                "of sample crops) or --calibration synthetic (the project's generator)"
            )
            raise BackendError(msg)
        if not weak and not onnx_has_qdq:
            msg = (
                f"int8 on TensorRT {tensorrt_version}: implicit INT8 calibration was removed "
                "in TensorRT 11; the ONNX must carry QuantizeLinear/DequantizeLinear nodes "
                "(quantize it with NVIDIA ModelOpt), or build with --precision fp16"
            )
            raise BackendError(msg)

    cleared = ("TF32",) if precision == "fp32" else ()
    if weak:
        flags: tuple[str, ...] = {
            "fp32": (),
            "fp16": ("FP16",),
            # FP16 too, so layers that cannot run in INT8 fall back to FP16, not FP32.
            "int8": ("INT8", "FP16") if gpu.fast_fp16 else ("INT8",),
        }[precision]
        return PrecisionPlan(
            requested,
            precision,
            major,
            flags,
            False,
            None,
            precision == "int8",
            tuple(notes),
            cleared,
        )
    convert = "fp16" if precision == "fp16" else None
    return PrecisionPlan(
        requested, precision, major, (), True, convert, False, tuple(notes), cleared
    )


def onnx_has_qdq(onnx_path: Path) -> bool:
    """Whether the graph is explicitly quantized (has QuantizeLinear/DequantizeLinear)."""
    onnx = _import_onnx()
    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def convert_onnx_to_fp16(source: Path, target: Path) -> Path:
    """Write an FP16 copy of the graph at ``source`` to ``target``, keeping float32 I/O.

    Float initializers and constants become float16 (clipped to the FP16 range), Cast nodes
    to float become casts to float16, graph inputs are cast to float16 on entry and outputs
    back to float32 on exit, and ops in :data:`KEEP_FP32_OPS` run in float32 between casts.
    Control-flow subgraphs (If/Loop/Scan) are refused.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    float_tensors = _float_tensor_names(inferred.graph, TensorProto.FLOAT)

    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(init)), init.name))

    new_nodes = []
    inputs = [i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT]
    renamed = {name: f"{name}__fp16" for name in inputs}
    for name in inputs:
        new_nodes.append(
            helper.make_node(
                "Cast", [name], [renamed[name]], name=f"{name}__to_fp16", to=TensorProto.FLOAT16
            )
        )
    outputs = {o.name for o in graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT}

    for node in graph.node:
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            msg = (
                f"fp16 conversion does not handle control flow ({node.op_type} "
                f"{node.name!r}); convert the graph with NVIDIA ModelOpt AutoCast instead"
            )
            raise BackendError(msg)
        node.input[:] = [renamed.get(i, i) for i in node.input]
        if node.op_type in KEEP_FP32_OPS:
            for index, name in enumerate(node.input):
                if name and (name in float_tensors or name in renamed.values()):
                    cast = f"{name}__fp32_for_{node.name or node.op_type}_{index}"
                    new_nodes.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT))
                    node.input[index] = cast
            after = []
            for index, name in enumerate(node.output):
                if name in float_tensors:
                    node.output[index] = f"{name}__fp32"
                    after.append(
                        helper.make_node(
                            "Cast", [node.output[index]], [name], to=TensorProto.FLOAT16
                        )
                    )
            new_nodes.append(node)
            new_nodes.extend(after)
            continue
        if node.op_type == "Constant":
            _constant_to_fp16(node)
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(attr.t))))
        new_nodes.append(node)

    for name in outputs:
        internal = f"{name}__fp16"
        for node in new_nodes:
            node.output[:] = [internal if o == name else o for o in node.output]
            node.input[:] = [internal if i == name else i for i in node.input]
        new_nodes.append(
            helper.make_node(
                "Cast", [internal], [name], name=f"{name}__to_fp32", to=TensorProto.FLOAT
            )
        )
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        msg = f"the fp16 copy of {source} is not a valid ONNX graph: {exc}"
        raise BackendError(msg) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def _float_tensor_names(graph, float_type: int) -> set[str]:
    """Names of every float32 tensor the (shape-inferred) graph knows the type of."""
    names = {
        v.name
        for v in [*graph.value_info, *graph.input, *graph.output]
        if v.type.tensor_type.elem_type == float_type
    }
    names |= {i.name for i in graph.initializer if i.data_type == float_type}
    return names


def _constant_to_fp16(node) -> None:
    """A Constant's ``value_float(s)`` attribute (a float32 output) -> a float16 ``value``."""
    from onnx import helper, numpy_helper

    for attr in list(node.attribute):
        if attr.name in ("value_float", "value_floats"):
            values = np.array(attr.f if attr.name == "value_float" else list(attr.floats))
            node.attribute.remove(attr)
            node.attribute.append(
                helper.make_attribute("value", numpy_helper.from_array(_to_fp16(values)))
            )


def _to_fp16(values: np.ndarray) -> np.ndarray:
    return np.clip(values, -_FP16_MAX, _FP16_MAX).astype(np.float16)


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        msg = (
            "converting the ONNX graph's precision needs the `onnx` package; "
            "`pip install onnx` (or the seawatch[gpu] extra)"
        )
        raise BackendError(msg) from exc
    return onnx


__all__ = [
    "KEEP_FP32_OPS",
    "PRECISIONS",
    "GpuInfo",
    "Precision",
    "PrecisionPlan",
    "convert_onnx_to_fp16",
    "onnx_has_qdq",
    "plan_precision",
    "tensorrt_major",
]
