"""Which backend runs a model: the one asked for, or with ``auto`` the best one available.

``auto`` probes in order TensorRT -> ONNX Runtime GPU (TensorRT/CUDA execution provider) ->
PyTorch CUDA -> ONNX Runtime CPU, picks the first that can run the model and keeps, for every
other, why it was skipped (or that a better one was chosen), so the choice can be logged in
one line. A backend named explicitly must be available: its probe's reason becomes the error.
Probes are plain callables (model dir -> None when available, else the reason), so the
selection is tested with their results injected.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path

from seawatch.contracts.errors import BackendError

BACKENDS: tuple[str, ...] = ("tensorrt", "onnxruntime-gpu", "torch-cuda", "onnxruntime")
Probe = Callable[[Path], "str | None"]


def probe_tensorrt(model_dir: Path) -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt not importable (pip install 'seawatch[gpu]')"
    try:
        import tensorrt as trt
    except Exception as exc:  # a broken install raises more than ImportError
        return f"tensorrt failed to import: {exc}"
    from seawatch.inference.precision import tensorrt_major

    if tensorrt_major(trt.__version__) < 10:
        return f"tensorrt {trt.__version__} is older than 10"
    from seawatch.inference._cuda import gpu_info

    try:
        gpu_info()
    except BackendError as exc:
        return f"no CUDA device: {exc}"
    return None


def probe_onnxruntime_gpu(model_dir: Path) -> str | None:
    from seawatch.inference.ort_gpu_backend import available_gpu_providers

    if not available_gpu_providers():
        return "onnxruntime lists no TensorRT/CUDA execution provider (pip install onnxruntime-gpu)"
    return None


def probe_torch_cuda(model_dir: Path) -> str | None:
    from seawatch.inference.torch_cuda_backend import torch_cuda_unavailable

    return torch_cuda_unavailable(model_dir)


def probe_onnxruntime(model_dir: Path) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime not installed"
    return None


PROBES: dict[str, Probe] = {
    "tensorrt": probe_tensorrt,
    "onnxruntime-gpu": probe_onnxruntime_gpu,
    "torch-cuda": probe_torch_cuda,
    "onnxruntime": probe_onnxruntime,
}


def choose_backend(
    requested: str,
    model_dir: Path,
    *,
    probes: Mapping[str, Probe] | None = None,
    failed: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """(backend name, {other backend: why not it}). BackendError when nothing can run.

    ``probes`` replaces some probes (tests); ``failed`` names backends that were available
    but failed to open, with the reason, so ``auto`` moves on to the next.
    """
    probes = {**PROBES, **(probes or {})}
    failed = failed or {}
    model_dir = Path(model_dir)
    if requested != "auto":
        if requested not in BACKENDS:
            allowed = ", ".join(BACKENDS)
            msg = f"inference.backend must be auto or one of {allowed}, got {requested!r}"
            raise BackendError(msg)
        reason = _probe(probes[requested], model_dir)
        if reason is not None:
            msg = (
                f"inference.backend {requested!r} is not available here: {reason}; "
                "set inference.backend to 'auto' to use the best available"
            )
            raise BackendError(msg)
        return requested, {}
    reasons: dict[str, str] = {}
    for name in BACKENDS:
        reason = failed.get(name) or _probe(probes[name], model_dir)
        if reason is None:
            chosen = BACKENDS.index(name)
            reasons.update({later: f"{name} preferred" for later in BACKENDS[chosen + 1 :]})
            return name, reasons
        reasons[name] = reason
    msg = "no inference backend can run here: " + format_reasons(reasons)
    raise BackendError(msg)


def _probe(probe: Probe, model_dir: Path) -> str | None:
    try:
        return probe(model_dir)
    except Exception as exc:  # a probe must never stop the daemon; its failure is a reason
        return f"probe failed: {type(exc).__name__}: {exc}"


def format_reasons(reasons: Mapping[str, str]) -> str:
    """``tensorrt:'tensorrt not importable',onnxruntime-gpu:'...'`` for a key=value log line."""
    return ",".join(f"{name}:{reason!r}" for name, reason in reasons.items())


__all__ = ["BACKENDS", "PROBES", "Probe", "choose_backend", "format_reasons"]
