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

        return OnnxRuntimeGpuBackend(onnx_path, threads=threads)
    if name == "torch-cuda":
        from seawatch.inference.torch_cuda_backend import TorchCudaBackend

        return TorchCudaBackend(onnx_path.parent, max_batch=max_batch)
    from seawatch.inference.tensorrt_backend import TensorRTBackend, ensure_engine

    engine = ensure_engine(onnx_path.parent, max_batch=max_batch, sample_inputs=inputs)
    return TensorRTBackend(engine.plan_path, max_batch=max_batch)


__all__ = ["open_backend"]
