"""Building a TensorRT engine from a model's ONNX graph (the run side is
:mod:`seawatch.inference.tensorrt_backend`).

Parse the ONNX file (for TensorRT 11 FP16, an FP16 copy of it — see
:mod:`seawatch.inference.precision`), one optimisation profile over the batch axis (min 1,
opt and max from the settings), TensorRT 10's FP16/INT8 builder flags (TF32 cleared for fp32)
or a strongly typed network on TensorRT 11, an INT8 entropy calibrator fed batches of exactly
the profile's opt batch, and the persistent timing cache of
:mod:`seawatch.inference.engine_cache`. ``tensorrt`` is imported only here and in the backend,
only when used.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard, sha256_file
from seawatch.contracts.errors import BackendError
from seawatch.inference.engine_cache import EngineCache, EngineKey
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
            report_progress(progress, "convert ONNX to fp16", 0, 1)
            onnx_path = convert_onnx_to_fp16(onnx_path, Path(scratch) / "model.fp16.onnx")
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            msg = f"TensorRT cannot parse {onnx_path}: {errors}"
            raise BackendError(msg)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    for flag in request.plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in request.plan.cleared_flags:
        if hasattr(trt.BuilderFlag, flag):  # TF32: TensorRT 10 and 11 have it
            config.clear_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    shape = key.input_shape
    profile.set_shape(
        name, (key.min_batch, *shape), (key.opt_batch, *shape), (key.max_batch, *shape)
    )
    config.add_optimization_profile(profile)
    calibrator = None
    if request.plan.calibrate:
        batches = _calibration_batches(calibration, key)
        calibrator = _make_calibrator(trt, batches, cache.directory / f"{key.stem()}.calib")
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
    report_progress(progress, "build engine", 0, 1)
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
    report_progress(progress, "build engine", 1, 1)
    return bytes(serialized)


def report_progress(progress: Progress | None, phase: str, step: int, steps: int) -> None:
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


def _calibration_batches(
    calibration: Iterable[np.ndarray] | None, key: EngineKey
) -> list[np.ndarray]:
    """The calibration batches, checked against the profile: TensorRT calibrates a network
    with a dynamic batch at the calibration profile's opt shape, so every batch must be
    opt_batch x C x H x W (a batch of another size fails the build or mis-calibrates)."""
    if calibration is None:
        raise BackendError("int8 build without calibration batches")
    items = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration]
    if not items:
        raise BackendError("int8 calibration got no full batch of sample images; add more")
    want = (key.opt_batch, *key.input_shape)
    wrong = sorted({tuple(b.shape) for b in items if tuple(b.shape) != want})
    if wrong:
        msg = (
            f"int8 calibration batches of shape {wrong} do not match the optimisation "
            f"profile's opt shape {want}; calibrate in batches of {key.opt_batch} images"
        )
        raise BackendError(msg)
    return items


def _make_calibrator(trt: Any, items: list[np.ndarray], cache_file: Path) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``items`` (checked batches) from the GPU."""
    from seawatch.inference._cuda import DeviceMemory

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


__all__ = ["BuildRequest", "Progress", "build_engine", "import_tensorrt", "report_progress"]
