"""ONNX Runtime on the GPU: the TensorRT or CUDA execution provider, when the installed
onnxruntime (``onnxruntime-gpu``) has them.

Providers are tried in order TensorRT EP -> CUDA EP -> CPU for nodes neither takes. ONNX
Runtime quietly falls back to the CPU when a provider's libraries fail to load, so the
session's actual providers are checked and a session without a GPU provider is refused.
The TensorRT EP caches its engines and timing cache under ``<model_dir>/engines/ort-trt``.
"""

from __future__ import annotations

from pathlib import Path

from seawatch.contracts.errors import BackendError
from seawatch.inference.engine_cache import ENGINES_DIR
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def available_gpu_providers() -> list[str]:
    """The GPU execution providers this onnxruntime build lists, best first."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    listed = set(ort.get_available_providers())
    return [p for p in GPU_PROVIDERS if p in listed]


class OnnxRuntimeGpuBackend(OnnxRuntimeBackend):
    """An ONNX Runtime session on the TensorRT or CUDA execution provider."""

    name = "onnxruntime-gpu"

    def __init__(self, onnx_path: Path, *, threads: int = 1, fp16: bool = True) -> None:
        import onnxruntime as ort

        gpu = available_gpu_providers()
        if not gpu:
            msg = (
                "this onnxruntime has no TensorRT/CUDA execution provider "
                f"(it lists {ort.get_available_providers()}); `pip install onnxruntime-gpu`"
            )
            raise BackendError(msg)
        cache = Path(onnx_path).parent / ENGINES_DIR / "ort-trt"
        providers: list[str | tuple[str, dict[str, object]]] = []
        for provider in gpu:
            if provider == "TensorrtExecutionProvider":
                cache.mkdir(parents=True, exist_ok=True)
                providers.append(
                    (
                        provider,
                        {
                            "trt_fp16_enable": fp16,
                            "trt_engine_cache_enable": True,
                            "trt_engine_cache_path": str(cache),
                            "trt_timing_cache_enable": True,
                            "trt_timing_cache_path": str(cache),
                        },
                    )
                )
            else:
                providers.append(provider)
        providers.append("CPUExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=providers
            )
        except Exception as exc:
            raise BackendError(f"ONNX Runtime (GPU) cannot load {onnx_path}: {exc}") from exc
        active = self._session.get_providers()
        if not any(p in active for p in GPU_PROVIDERS):
            msg = (
                f"ONNX Runtime fell back to {active} for {onnx_path}: the CUDA/TensorRT "
                "libraries did not load (check the CUDA and cuDNN versions onnxruntime-gpu "
                "was built for)"
            )
            raise BackendError(msg)
        self.providers = active
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.threads = threads


__all__ = ["GPU_PROVIDERS", "OnnxRuntimeGpuBackend", "available_gpu_providers"]
