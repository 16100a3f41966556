"""TensorRT: an engine built from the model's ONNX graph, cached beside it, run on the GPU.

Build (:func:`build_engine`): parse the ONNX file (for TensorRT 11 FP16, an FP16 copy of it —
see :mod:`seawatch.inference.precision`), one optimisation profile over the batch axis
(min 1, opt and max from the settings), TensorRT 10's FP16/INT8 builder flags or a strongly
typed network on TensorRT 11, an INT8 entropy calibrator on sample images where asked, and
the persistent timing cache of :mod:`seawatch.inference.engine_cache`. Run
(:class:`TensorRTBackend`): deserialize the plan, one execution context, device buffers sized
for the largest batch, ``set_input_shape`` + ``set_tensor_address`` + ``execute_async_v3``
on a CUDA stream. ``tensorrt`` is imported only here, only when used.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card, sha256_file
from seawatch.contracts.errors import BackendError
from seawatch.inference.backend import BackendBase
from seawatch.inference.engine_cache import EngineCache, EngineKey
from seawatch.inference.parity import InputMaker
from seawatch.inference.precision import GpuInfo, PrecisionPlan, convert_onnx_to_fp16

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 1 << 30
Progress = Callable[[str, int, int], None]  # (phase, step, steps)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or BackendError naming the extra to install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        msg = (
            f"tensorrt is not importable ({exc}); on a machine with an NVIDIA GPU "
            "`pip install 'seawatch[gpu]'` (tensorrt, cuda-python)"
        )
        raise BackendError(msg) from exc
    return trt


@dataclass(frozen=True)
class BuildRequest:
    """What to build: the model, its precision plan and the batch profile."""

    model_dir: Path
    card: ModelCard
    plan: PrecisionPlan
    gpu: GpuInfo
    tensorrt_version: str
    max_batch: int
    opt_batch: int | None = None

    def key(self) -> EngineKey:
        spec = self.card.input
        return EngineKey(
            gpu_name=self.gpu.name,
            compute_capability=self.gpu.capability,
            tensorrt_version=self.tensorrt_version,
            precision=self.plan.precision,
            min_batch=1,
            opt_batch=self.opt_batch or self.max_batch,
            max_batch=self.max_batch,
            input_shape=(spec.channels, spec.height, spec.width),
            onnx_sha256=sha256_file(self.model_dir / ONNX_FILE),
        )


def build_engine(
    request: BuildRequest,
    *,
    calibration: Iterable[np.ndarray] | None = None,
    progress: Progress | None = None,
) -> bytes:
    """Build a serialized engine (a plan) for ``request``; BackendError on any failure."""
    trt = import_tensorrt()
    key = request.key()
    cache = EngineCache(request.model_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if request.plan.strongly_typed and strongly_typed is not None:
        # Required on 10.x to opt in; accepted (strong typing is always on) on 11.x.
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="seawatch-trt-") as scratch:
        onnx_path = request.model_dir / ONNX_FILE
        if request.plan.convert_onnx_to == "fp16":
            _report(progress, "convert ONNX to fp16", 0, 1)
            onnx_path = convert_onnx_to_fp16(onnx_path, Path(scratch) / "model.fp16.onnx")
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            msg = f"TensorRT cannot parse {onnx_path}: {errors}"
            raise BackendError(msg)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    for flag in request.plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    shape = key.input_shape
    profile.set_shape(
        name, (key.min_batch, *shape), (key.opt_batch, *shape), (key.max_batch, *shape)
    )
    config.add_optimization_profile(profile)
    calibrator = None
    if request.plan.calibrate:
        if calibration is None:
            raise BackendError("int8 build without calibration batches")
        calibrator = _make_calibrator(trt, calibration, cache.directory / f"{key.stem()}.calib")
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)

    timing_path = cache.timing_cache_path(
        key.gpu_name, key.compute_capability, key.tensorrt_version
    )
    timing = config.create_timing_cache(cache.read_timing_cache(timing_path))
    config.set_timing_cache(timing, ignore_mismatch=False)
    monitor = _make_progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor

    started = time.monotonic()
    _report(progress, "build engine", 0, 1)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        msg = (
            f"TensorRT could not build an engine for {request.model_dir} "
            f"({key.precision}, batch 1..{key.max_batch}); see the TensorRT log above"
        )
        raise BackendError(msg)
    cache.write_timing_cache(timing_path, bytes(config.get_timing_cache().serialize()))
    log.info(
        "engine_built model=%s precision=%s max_batch=%d seconds=%.1f",
        request.model_dir,
        key.precision,
        key.max_batch,
        time.monotonic() - started,
    )
    _report(progress, "build engine", 1, 1)
    return bytes(serialized)


def _report(progress: Progress | None, phase: str, step: int, steps: int) -> None:
    if progress is not None:
        progress(phase, step, steps)


def _make_progress_monitor(trt: Any, progress: Progress | None) -> Any:
    """A ``trt.IProgressMonitor`` (TensorRT 10+) forwarding phases to ``progress``."""
    if progress is None or not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            progress(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            progress(phase_name, step + 1, self._steps.get(phase_name, step + 1))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            steps = self._steps.pop(phase_name, 1)
            progress(phase_name, steps, steps)

    return _Monitor()


def _make_calibrator(trt: Any, batches: Iterable[np.ndarray], cache_file: Path) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` (all of one size) from the GPU."""
    from seawatch.inference._cuda import DeviceMemory

    items = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
    if not items:
        raise BackendError("int8 calibration got no full batch of sample images; add more")

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._memory = DeviceMemory()
            self._pointer = self._memory.alloc(items[0].nbytes)
            self._next = 0

        def get_batch_size(self) -> int:
            return len(items[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._next >= len(items):
                return None
            self._memory.to_device(self._pointer, items[self._next])
            self._next += 1
            return [self._pointer]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()


class TensorRTBackend(BackendBase):
    """One deserialized engine with device buffers for batches up to ``max_batch``."""

    name = "tensorrt"

    def __init__(self, plan_path: Path, *, max_batch: int) -> None:
        from seawatch.inference._cuda import DeviceMemory

        trt = import_tensorrt()
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self._engine is None:
            msg = f"TensorRT cannot deserialize {plan_path}; delete it to rebuild"
            raise BackendError(msg)
        self._context = self._engine.create_execution_context()
        self.max_batch = max_batch
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == mode]
        self._outputs = [n for n in names if self._engine.get_tensor_mode(n) != mode]
        if len(self._inputs) != 1:
            msg = f"engine {plan_path} has {len(self._inputs)} inputs; seawatch models have one"
            raise BackendError(msg)
        self._memory = DeviceMemory()
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._input_shape = tuple(self._engine.get_tensor_shape(self._inputs[0]))[1:]
        self._context.set_input_shape(self._inputs[0], (max_batch, *self._input_shape))
        self._buffers: dict[str, int] = {}
        for n in names:
            shape = tuple(self._context.get_tensor_shape(n))
            nbytes = int(np.prod(shape)) * self._dtypes[n].itemsize
            self._buffers[n] = self._memory.alloc(nbytes)
            self._context.set_tensor_address(n, self._buffers[n])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_outputs(batch)[0]

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run ``batch`` in chunks of at most ``max_batch``; outputs as float32."""
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self._input_shape:
            msg = f"TensorRT engine takes N x {self._input_shape}, got {batch.shape}"
            raise BackendError(msg)
        parts = [
            self._run_chunk(batch[i : i + self.max_batch])
            for i in range(0, len(batch), self.max_batch)
        ]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(self._outputs)))

    def _run_chunk(self, chunk: np.ndarray) -> list[np.ndarray]:
        name = self._inputs[0]
        try:
            self._context.set_input_shape(name, chunk.shape)
            self._memory.to_device(self._buffers[name], chunk.astype(self._dtypes[name]))
            if not self._context.execute_async_v3(self._memory.stream):
                raise BackendError("execute_async_v3 returned False")
            results = []
            for out in self._outputs:
                host = np.empty(tuple(self._context.get_tensor_shape(out)), self._dtypes[out])
                self._memory.to_host(host, self._buffers[out])
                results.append(host)
            self._memory.synchronize()
        except BackendError:
            raise
        except Exception as exc:
            msg = f"TensorRT failed on a batch of {len(chunk)}: {exc}"
            raise BackendError(msg) from exc
        return [r.astype(np.float32, copy=False) for r in results]

    def close(self) -> None:
        if getattr(self, "_memory", None) is not None:
            for pointer in self._buffers.values():
                self._memory.free(pointer)
            self._buffers = {}
            self._memory.close()
            self._memory = None
        self._context = self._engine = self._runtime = None


@dataclass(frozen=True)
class EngineResult:
    """The engine the cache holds for a model, and how it got there."""

    plan_path: Path
    key: EngineKey
    built: bool
    reason: str
    parity: dict[str, object]


def ensure_engine(
    model_dir: Path,
    *,
    max_batch: int,
    precision: str = "auto",
    calibration: Iterable[np.ndarray] | None = None,
    has_calibration: bool = False,
    parity_samples: int = 64,
    rebuild: bool = False,
    progress: Progress | None = None,
    sample_inputs: InputMaker | None = None,
) -> EngineResult:
    """Return a cached engine for this GPU/TensorRT/precision/profile/ONNX, or build one,
    parity-check it against ONNX Runtime CPU and cache it. A refused engine is deleted.

    With ``precision="auto"`` a cached, parity-checked engine of any precision for the same
    GPU, TensorRT, profile and graph is taken before building the default (FP16 where the GPU
    runs it at full rate)."""
    from seawatch.inference._cuda import gpu_info
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.inference.parity import TOLERANCES, check_parity
    from seawatch.inference.parity import sample_inputs as parity_inputs
    from seawatch.inference.precision import onnx_has_qdq, plan_precision

    trt = import_tensorrt()
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    gpu = gpu_info()
    qdq = precision == "int8" and int(trt.__version__.split(".")[0]) >= 11
    plan = plan_precision(
        precision,
        trt.__version__,
        gpu,
        has_calibration=has_calibration,
        onnx_has_qdq=qdq and onnx_has_qdq(model_dir / ONNX_FILE),
    )
    request = BuildRequest(model_dir, card, plan, gpu, trt.__version__, max_batch)
    key = request.key()
    cache = EngineCache(model_dir)
    found = cache.lookup(key)
    if precision == "auto" and not found.hit and not rebuild:
        # An engine built on purpose in another precision (`seawatch engine build --precision
        # int8`) and parity-checked for this GPU, TensorRT, profile and graph is used as is.
        for other in ("int8", "fp16", "fp32"):
            alternative = cache.lookup(replace(key, precision=other))
            if alternative.hit:
                key, found = replace(key, precision=other), alternative
                break
    if found.hit and not rebuild:
        log.info("engine_cached plan=%s", found.plan_path)
        return EngineResult(found.plan_path, key, False, found.reason, found.record["parity"])
    reason = "rebuild asked for" if rebuild else found.reason
    log.info("engine_build model=%s precision=%s reason=%r", model_dir, plan.precision, reason)
    plan_bytes = build_engine(request, calibration=calibration, progress=progress)
    path = cache.store(
        key,
        plan_bytes,
        precision_plan={
            "requested": plan.requested,
            "flags": list(plan.builder_flags),
            "strongly_typed": plan.strongly_typed,
            "notes": list(plan.notes),
        },
    )
    _report(progress, "parity check", 0, 1)
    inputs = parity_inputs(card, parity_samples, seed=0, make=sample_inputs)
    try:
        with (
            TensorRTBackend(path, max_batch=max_batch) as candidate,
            OnnxRuntimeBackend(model_dir / ONNX_FILE) as reference,
        ):
            report = check_parity(
                candidate,
                reference,
                inputs,
                TOLERANCES[plan.precision],
                chunk=max_batch,
                top1=bool(card.class_names),
            )
    except BackendError:
        cache.discard(key)
        raise
    cache.update_record(key, parity=report.as_record())
    _report(progress, "parity check", 1, 1)
    log.info("engine_parity plan=%s %s", path, report.summary())
    return EngineResult(path, key, True, reason, report.as_record())


__all__ = [
    "BuildRequest",
    "EngineResult",
    "TensorRTBackend",
    "build_engine",
    "ensure_engine",
    "import_tensorrt",
]
