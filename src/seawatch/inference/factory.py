"""Opening a backend: the one named, or with ``auto`` the best one available
(:mod:`seawatch.inference.selection`); a GPU backend that fails to open is skipped with its
error as the reason. Each backend module is imported only when it is chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from seawatch.contracts.errors import BackendError, ConfigError
from seawatch.inference.backend import Backend
from seawatch.inference.parity import InputMaker
from seawatch.inference.selection import BACKENDS, choose_backend, format_reasons

log = logging.getLogger(__name__)


def open_backend(
    kind: str,
    onnx_path: Path,
    *,
    threads: int,
    max_batch: int = 64,
    probes: Mapping[str, object] | None = None,
    sample_inputs: InputMaker | None = None,
) -> Backend:
    """Open the backend ``kind`` (or with ``auto`` the best available) for the model at
    ``onnx_path`` and log the choice: ``backend_selected name=... skipped=name:'why',...``.
    ``sample_inputs`` (the task plug-in's) makes the inputs a new TensorRT engine is
    parity-checked on."""
    if kind != "auto" and kind not in BACKENDS:
        msg = f"inference.backend {kind!r} is not one of auto, {', '.join(BACKENDS)}"
        raise ConfigError(msg)
    model_dir = Path(onnx_path).parent
    failed: dict[str, str] = {}
    while True:
        name, reasons = choose_backend(kind, model_dir, probes=probes, failed=failed)  # type: ignore[arg-type]
        try:
            backend = _open(
                name, Path(onnx_path), threads=threads, max_batch=max_batch, inputs=sample_inputs
            )
        except BackendError as exc:
            if kind != "auto":
                raise
            failed[name] = f"failed to open: {exc}"
            continue
        log.info(
            "backend_selected name=%s requested=%s model=%s skipped=%s",
            name,
            kind,
            model_dir,
            format_reasons(reasons) or "-",
        )
        return backend


def _open(
    name: str, onnx_path: Path, *, threads: int, max_batch: int, inputs: InputMaker | None
) -> Backend:
    if name == "onnxruntime":
        from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx_path, threads=threads)
    if name == "onnxruntime-gpu":
        from seawatch.inference.ort_gpu_backend import OnnxRuntimeGpuBackend

        gpu = OnnxRuntimeGpuBackend(onnx_path, threads=threads, max_batch=max_batch)
        return _verified(gpu, onnx_path, "fp16" if gpu.fp16 else "fp32", max_batch, inputs)
    if name == "torch-cuda":
        from seawatch.inference.torch_cuda_backend import TorchCudaBackend

        torch_backend = TorchCudaBackend(onnx_path.parent, max_batch=max_batch)
        return _verified(torch_backend, onnx_path, torch_backend.precision, max_batch, inputs)
    from seawatch.inference.tensorrt_backend import TensorRTBackend, ensure_engine

    engine = ensure_engine(onnx_path.parent, max_batch=max_batch, sample_inputs=inputs)
    return TensorRTBackend(engine.plan_path, max_batch=max_batch)


def _verified(
    backend: Backend, onnx_path: Path, precision: str, max_batch: int, inputs: InputMaker | None
) -> Backend:
    """A GPU backend that is not a cached, parity-checked TensorRT engine is checked against
    ONNX Runtime CPU on the task's own sample inputs before it serves; refused (and closed)
    outside its precision's tolerance, so ``auto`` moves on to the next backend."""
    from seawatch.inference.parity import verify_backend

    try:
        report = verify_backend(backend, onnx_path.parent, precision, make=inputs, chunk=max_batch)
    except BackendError:
        backend.close()
        raise
    log.info("backend_parity name=%s precision=%s %s", backend.name, precision, report.summary())
    return backend


__all__ = ["open_backend"]
