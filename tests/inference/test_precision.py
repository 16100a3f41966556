"""Precision plans per TensorRT major and GPU, and the FP16 ONNX conversion (ORT CPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from seawatch.contracts.errors import BackendError
from seawatch.inference.precision import (
    GpuInfo,
    convert_onnx_to_fp16,
    onnx_has_qdq,
    plan_precision,
)

REPO = Path(__file__).resolve().parents[2]
AMPERE = GpuInfo("NVIDIA A10", 8, 6)
TURING = GpuInfo("Tesla T4", 7, 5)
PASCAL_CONSUMER = GpuInfo("NVIDIA GeForce GTX 1080", 6, 1)
P100 = GpuInfo("Tesla P100-PCIE-16GB", 6, 0)


def test_auto_is_fp16_where_the_gpu_runs_it_at_full_rate_else_fp32():
    assert plan_precision("auto", "10.3.0", AMPERE).precision == "fp16"
    assert plan_precision("auto", "10.3.0", TURING).precision == "fp16"
    assert plan_precision("auto", "10.3.0", P100).precision == "fp16"
    plan = plan_precision("auto", "10.3.0", PASCAL_CONSUMER)
    assert plan.precision == "fp32"
    assert plan.builder_flags == ()
    assert "lacks full-rate FP16" in plan.notes[0]


def test_tensorrt_10_uses_builder_flags_on_a_weakly_typed_network():
    plan = plan_precision("fp16", "10.3.0.26", AMPERE)
    assert (plan.builder_flags, plan.strongly_typed, plan.convert_onnx_to) == (
        ("FP16",),
        False,
        None,
    )
    fp32 = plan_precision("fp32", "10.3.0", AMPERE)
    assert (fp32.builder_flags, fp32.strongly_typed, fp32.calibrate) == ((), False, False)


@pytest.mark.parametrize("version", ["10.3.0", "11.0.0"])
def test_fp32_clears_tf32_and_no_other_precision_does(version):
    """TensorRT allows TF32 in FP32 layers by default (on Ampere and later): fp32 turns it
    off, so an fp32 engine is held to fp32's parity tolerance honestly."""
    assert plan_precision("fp32", version, AMPERE).cleared_flags == ("TF32",)
    assert plan_precision("fp16", version, AMPERE).cleared_flags == ()
    assert plan_precision("auto", version, PASCAL_CONSUMER).cleared_flags == ("TF32",)


def test_tensorrt_11_is_strongly_typed_and_converts_the_onnx_for_fp16():
    plan = plan_precision("fp16", "11.0.0", AMPERE)
    assert plan.builder_flags == ()
    assert plan.strongly_typed
    assert plan.convert_onnx_to == "fp16"
    fp32 = plan_precision("fp32", "11.2.1", AMPERE)
    assert fp32.strongly_typed and fp32.convert_onnx_to is None


def test_int8_on_tensorrt_10_needs_calibration_and_keeps_fp16_fallback():
    with pytest.raises(BackendError, match="--calibration DIR"):
        plan_precision("int8", "10.3.0", AMPERE)
    plan = plan_precision("int8", "10.3.0", AMPERE, has_calibration=True)
    assert plan.builder_flags == ("INT8", "FP16")
    assert plan.calibrate
    plan = plan_precision("int8", "10.3.0", PASCAL_CONSUMER, has_calibration=True)
    assert plan.builder_flags == ("INT8",)


def test_int8_on_tensorrt_11_needs_an_explicitly_quantized_graph():
    with pytest.raises(BackendError, match="QuantizeLinear/DequantizeLinear"):
        plan_precision("int8", "11.0.0", AMPERE, has_calibration=True)
    plan = plan_precision("int8", "11.0.0", AMPERE, onnx_has_qdq=True)
    assert plan.strongly_typed and not plan.calibrate and plan.builder_flags == ()


@pytest.mark.parametrize(
    ("requested", "version", "gpu", "match"),
    [
        ("fp16", "10.3.0", PASCAL_CONSUMER, "no full-rate FP16"),
        ("int8", "10.3.0", P100, r"no INT8 support \(needs 6.1\+\)"),
        ("fp16", "8.6.1", AMPERE, "not supported"),
        ("bf16", "10.3.0", AMPERE, "auto, fp32, fp16 or int8"),
        ("fp16", "ten", AMPERE, "major version"),
    ],
)
def test_impossible_requests_are_clear_errors(requested, version, gpu, match):
    with pytest.raises(BackendError, match=match):
        plan_precision(requested, version, gpu, has_calibration=True)


def test_a_newer_major_is_treated_as_strongly_typed_with_a_note():
    plan = plan_precision("fp16", "12.0.0", AMPERE)
    assert plan.strongly_typed and plan.convert_onnx_to == "fp16"
    assert "newer than tested" in plan.notes[0]


def test_gpu_capabilities():
    assert AMPERE.capability == "8.6"
    assert PASCAL_CONSUMER.int8 and not PASCAL_CONSUMER.fast_fp16
    assert P100.fast_fp16 and not P100.int8


@pytest.mark.parametrize("task", ["plankton", "fish"])
def test_fp16_conversion_keeps_float32_io_and_the_outputs_close(tmp_path, task):
    source = REPO / "models" / task / "model.onnx"
    target = convert_onnx_to_fp16(source, tmp_path / "fp16.onnx")
    model = onnx.load(str(target))
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {TensorProto.FLOAT}
    assert {o.type.tensor_type.elem_type for o in model.graph.output} == {TensorProto.FLOAT}
    assert {i.data_type for i in model.graph.initializer} - {TensorProto.INT64} == {
        TensorProto.FLOAT16
    }
    reference = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    converted = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    spec = reference.get_inputs()[0]
    x = np.random.default_rng(0).uniform(0, 255, (8, *spec.shape[1:])).astype(np.float32)
    want = reference.run(None, {spec.name: x})[0]
    got = converted.run(None, {spec.name: x})[0]
    assert got.dtype == np.float32
    assert np.max(np.abs(got - want)) < 5e-3
    assert not onnx_has_qdq(source)


def test_ops_kept_in_fp32_run_between_casts(tmp_path):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["doubled"]),
            helper.make_node("Resize", ["doubled", "", "scales"], ["big"], mode="nearest"),
            helper.make_node("Constant", [], ["half"], value_float=0.5),
            helper.make_node("Mul", ["big", "half"], ["y"]),
        ],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, 4, 4])],
        [scales, two],
    )
    source = tmp_path / "resize.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), source)
    target = convert_onnx_to_fp16(source, tmp_path / "resize16.onnx")
    resize = next(n for n in onnx.load(str(target)).graph.node if n.op_type == "Resize")
    assert all("fp32" in name for name in resize.input if name)
    x = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(y, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


def test_without_the_onnx_package_conversion_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(BackendError, match="pip install onnx"):
        convert_onnx_to_fp16(REPO / "models/plankton/model.onnx", tmp_path / "x.onnx")
