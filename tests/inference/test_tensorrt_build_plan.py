"""The TensorRT build sequence against a stand-in ``tensorrt`` module (no GPU, no TensorRT):
which flags, which network flags, which profile, which ONNX bytes, the timing cache. The
real library is exercised by test_tensorrt_backend.py where it is installed."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from seawatch.contracts.card import load_card
from seawatch.contracts.errors import BackendError
from seawatch.inference.engine_cache import EngineCache
from seawatch.inference.precision import GpuInfo, plan_precision
from seawatch.inference.tensorrt_build import BuildRequest, build_engine

PLANKTON = Path(__file__).resolve().parents[2] / "models" / "plankton"
GPU = GpuInfo("NVIDIA L4", 8, 9)


def _fake_tensorrt(version: str, *, plan: bytes | None = b"PLAN", parse_ok: bool = True):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = mock.MagicMock()
    trt.Logger.WARNING = 2
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.BuilderFlag = types.SimpleNamespace(FP16="FLAG_FP16", INT8="FLAG_INT8", TF32="FLAG_TF32")

    class _Calibrator:  # the Python base class the calibrator subclasses
        def __init__(self) -> None:
            pass

    trt.IInt8EntropyCalibrator2 = _Calibrator
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    builder = mock.MagicMock(name="builder")
    network = builder.create_network.return_value
    network.get_input.return_value.name = "image"
    config = builder.create_builder_config.return_value
    config.get_timing_cache.return_value.serialize.return_value = b"TIMINGS"
    builder.build_serialized_network.return_value = plan
    parser = mock.MagicMock(name="parser")
    parser.parse.return_value = parse_ok
    parser.num_errors = 0 if parse_ok else 1
    parser.get_error.return_value = "Unsupported op Foo"
    trt.Builder = mock.MagicMock(return_value=builder)
    trt.OnnxParser = mock.MagicMock(return_value=parser)
    return trt, builder, config, parser


@pytest.fixture
def artifact(tmp_path) -> Path:
    for name in ("card.json", "model.onnx"):
        shutil.copy(PLANKTON / name, tmp_path / name)
    return tmp_path


def _request(artifact: Path, version: str, precision: str) -> BuildRequest:
    plan = plan_precision(precision, version, GPU)
    return BuildRequest(artifact, load_card(artifact), plan, GPU, version, max_batch=32)


def test_tensorrt_10_fp16_sets_the_builder_flag_a_dynamic_profile_and_the_timing_cache(
    artifact, monkeypatch
):
    trt, builder, config, parser = _fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    request = _request(artifact, "10.3.0", "fp16")
    timing = EngineCache(artifact).timing_cache_path("NVIDIA L4", "8.9", "10.3.0")
    timing.parent.mkdir()
    timing.write_bytes(b"OLD")
    phases = []
    assert build_engine(request, progress=lambda *a: phases.append(a)) == b"PLAN"
    builder.create_network.assert_called_once_with(0)
    config.set_flag.assert_called_once_with("FLAG_FP16")
    profile = builder.create_optimization_profile.return_value
    profile.set_shape.assert_called_once_with(
        "image", (1, 1, 64, 64), (32, 1, 64, 64), (32, 1, 64, 64)
    )
    config.add_optimization_profile.assert_called_once_with(profile)
    config.create_timing_cache.assert_called_once_with(b"OLD")
    assert timing.read_bytes() == b"TIMINGS"
    assert parser.parse.call_args.args[0] == (artifact / "model.onnx").read_bytes()
    assert ("build engine", 1, 1) in phases


def test_tensorrt_11_fp16_parses_an_fp16_graph_on_a_strongly_typed_network(artifact, monkeypatch):
    trt, builder, config, parser = _fake_tensorrt("11.0.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    build_engine(_request(artifact, "11.0.0", "fp16"))
    builder.create_network.assert_called_once_with(1 << 1)
    config.set_flag.assert_not_called()
    parsed = onnx.load_from_string(parser.parse.call_args.args[0])
    assert {i.data_type for i in parsed.graph.initializer} == {TensorProto.FLOAT16}
    assert parsed.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert config.create_timing_cache.call_args.args[0] == b""


def test_parse_and_build_failures_are_backend_errors(artifact, monkeypatch):
    trt, *_ = _fake_tensorrt("10.3.0", parse_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(BackendError, match=r"cannot parse .*Unsupported op Foo"):
        build_engine(_request(artifact, "10.3.0", "fp32"))
    trt, *_ = _fake_tensorrt("10.3.0", plan=None)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(BackendError, match="could not build an engine"):
        build_engine(_request(artifact, "10.3.0", "fp32"))


def test_fp32_clears_tf32_so_fp32_means_fp32_and_fp16_keeps_it(artifact, monkeypatch):
    """TensorRT turns TF32 on by default (10-bit mantissas in FP32 matrix products), which
    an fp32 engine's 1e-3 parity tolerance does not allow for."""
    trt, _, config, _ = _fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    build_engine(_request(artifact, "10.3.0", "fp32"))
    config.clear_flag.assert_called_once_with("FLAG_TF32")
    config.set_flag.assert_not_called()
    trt, _, config, _ = _fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    build_engine(_request(artifact, "10.3.0", "fp16"))
    config.clear_flag.assert_not_called()


def _int8_request(artifact: Path, max_batch: int) -> BuildRequest:
    plan = plan_precision("int8", "10.3.0", GPU, has_calibration=True)
    return BuildRequest(artifact, load_card(artifact), plan, GPU, "10.3.0", max_batch=max_batch)


def test_int8_calibration_batches_must_be_the_profiles_opt_batch(artifact, monkeypatch):
    """TensorRT calibrates a dynamic-batch network at the calibration profile's opt shape:
    batches of 32 against a profile of 64 were refused by TensorRT only on a GPU; here they
    are refused before the build, naming both."""
    trt, builder, *_ = _fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    small = [np.zeros((32, 1, 64, 64), np.float32)] * 2
    with pytest.raises(BackendError, match=r"\(32, 1, 64, 64\).*opt shape \(64, 1, 64, 64\)"):
        build_engine(_int8_request(artifact, 64), calibration=small)
    builder.build_serialized_network.assert_not_called()


def test_int8_calibrator_feeds_opt_sized_batches_through_the_calibration_profile(
    artifact, monkeypatch
):
    import seawatch.inference._cuda as cuda

    trt, builder, config, _ = _fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    memory = _HostMemory()
    monkeypatch.setattr(cuda, "DeviceMemory", lambda: memory)
    batches = [np.full((8, 1, 64, 64), i, np.float32) for i in range(3)]
    assert build_engine(_int8_request(artifact, 8), calibration=batches) == b"PLAN"
    config.set_flag.assert_any_call("FLAG_INT8")
    profile = builder.create_optimization_profile.return_value
    config.set_calibration_profile.assert_called_once_with(profile)
    calibrator = config.int8_calibrator
    assert calibrator.get_batch_size() == 8
    fed = []
    while (pointers := calibrator.get_batch(["image"])) is not None:
        (pointer,) = pointers
        fed.append(memory.buffers[pointer][: batches[0].nbytes].view(np.float32)[0])
    assert fed == [0.0, 1.0, 2.0]


def test_int8_without_batches_is_refused_before_building(artifact, monkeypatch):
    trt, builder, *_ = _fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    plan = plan_precision("int8", "10.3.0", GPU, has_calibration=True)
    request = BuildRequest(artifact, load_card(artifact), plan, GPU, "10.3.0", max_batch=8)
    with pytest.raises(BackendError, match="calibration"):
        build_engine(request)
    builder.build_serialized_network.assert_not_called()


class _HostMemory:
    """DeviceMemory stand-in: 'device' buffers are host byte arrays keyed by a fake pointer."""

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}
        self.stream = 7

    def alloc(self, nbytes: int) -> int:
        pointer = 0x1000 * (len(self.buffers) + 1)
        self.buffers[pointer] = np.zeros(nbytes, np.uint8)
        return pointer

    def free(self, pointer: int) -> None:
        del self.buffers[pointer]

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self.buffers[pointer][: raw.size] = raw

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        array.reshape(-1).view(np.uint8)[:] = self.buffers[pointer][: array.nbytes]

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Engine:
    """One input ``image`` (N x 1 x 4 x 4) and one output ``probs`` (N x 2): the row sums of
    the image's top and bottom halves, computed on 'execute_async_v3'."""

    num_io_tensors = 2
    names = ("image", "probs")

    def __init__(self, memory: _HostMemory) -> None:
        self.memory = memory
        self.calls: list[tuple] = []

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "IN" if name == "image" else "OUT"

    def get_tensor_dtype(self, name):
        return np.float32

    def get_tensor_shape(self, name):
        return (-1, 1, 4, 4) if name == "image" else (-1, 2)

    def create_execution_context(self):
        engine = self

        class _Context:
            batch = 0
            addresses: dict[str, int] = {}  # noqa: RUF012

            def set_input_shape(self, name, shape):
                engine.calls.append(("set_input_shape", name, tuple(shape)))
                self.batch = shape[0]
                return True

            def get_tensor_shape(self, name):
                return (self.batch, 1, 4, 4) if name == "image" else (self.batch, 2)

            def set_tensor_address(self, name, pointer):
                self.addresses[name] = pointer

            def execute_async_v3(self, stream):
                engine.calls.append(("execute_async_v3", stream, self.batch))
                raw = engine.memory.buffers[self.addresses["image"]]
                x = raw[: self.batch * 64].view(np.float32).reshape(self.batch, 16)
                y = np.stack([x[:, :8].sum(1), x[:, 8:].sum(1)], axis=1).astype(np.float32)
                engine.memory.buffers[self.addresses["probs"]][: y.nbytes] = y.view(
                    np.uint8
                ).ravel()
                return True

        return _Context()


def test_the_backend_runs_chunks_of_max_batch_through_execute_async_v3(tmp_path, monkeypatch):
    import seawatch.inference._cuda as cuda

    memory = _HostMemory()
    engine = _Engine(memory)
    trt = types.ModuleType("tensorrt")
    trt.Logger = mock.MagicMock()
    trt.TensorIOMode = types.SimpleNamespace(INPUT="IN")
    trt.nptype = lambda dtype: dtype
    trt.Runtime = mock.MagicMock()
    trt.Runtime.return_value.deserialize_cuda_engine.return_value = engine
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda, "DeviceMemory", lambda: memory)
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"PLAN")
    from seawatch.inference.tensorrt_backend import TensorRTBackend

    x = np.random.default_rng(0).uniform(0, 1, (11, 1, 4, 4)).astype(np.float32)
    with TensorRTBackend(plan, max_batch=4) as backend:
        y = backend.run(x)
        with pytest.raises(BackendError, match="takes N x"):
            backend.run(x[:, :, :2])
    flat = x.reshape(11, 16)
    np.testing.assert_allclose(y, np.stack([flat[:, :8].sum(1), flat[:, 8:].sum(1)], 1), rtol=1e-6)
    runs = [c for c in engine.calls if c[0] == "execute_async_v3"]
    assert runs == [
        ("execute_async_v3", 7, 4),
        ("execute_async_v3", 7, 4),
        ("execute_async_v3", 7, 3),
    ]
    assert engine.calls[0] == ("set_input_shape", "image", (4, 1, 4, 4))
    assert memory.buffers == {}
