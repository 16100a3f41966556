"""TensorRT: an engine built from the model's ONNX graph (:mod:`.tensorrt_build`), cached
beside it, parity-checked against ONNX Runtime CPU, run on the GPU.

Run (:class:`TensorRTBackend`): deserialize the plan, one execution context, device buffers
sized for the largest batch, ``set_input_shape`` + ``set_tensor_address`` +
``execute_async_v3`` on a CUDA stream. :func:`ensure_engine` finds a cached engine or builds,
checks and caches one. ``tensorrt`` is imported only when used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import BackendError
from seawatch.inference.backend import BackendBase
from seawatch.inference.engine_cache import EngineCache, EngineKey
from seawatch.inference.parity import InputMaker
from seawatch.inference.tensorrt_build import (
    BuildRequest,
    Progress,
    build_engine,
    import_tensorrt,
    report_progress,
)

log = logging.getLogger(__name__)


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
            "cleared_flags": list(plan.cleared_flags),
            "notes": list(plan.notes),
        },
    )
    report_progress(progress, "parity check", 0, 1)
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
                names=card.outputs or [card.output],
            )
    except BackendError:
        cache.discard(key)
        raise
    cache.update_record(key, parity=report.as_record())
    report_progress(progress, "parity check", 1, 1)
    log.info("engine_parity plan=%s %s", path, report.summary())
    return EngineResult(path, key, True, reason, report.as_record())


__all__ = ["EngineResult", "TensorRTBackend", "ensure_engine"]
