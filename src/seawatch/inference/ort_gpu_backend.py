"""ONNX Runtime on the GPU: the TensorRT or CUDA execution provider, when the installed
onnxruntime (``onnxruntime-gpu``) has them.

Providers are tried in order TensorRT EP -> CUDA EP -> CPU for nodes neither takes. ONNX
Runtime quietly falls back to the CPU when a provider's libraries fail to load, so the
session's actual providers are checked and a session without a GPU provider is refused.
The TensorRT EP caches its engines and timing cache under ``<model_dir>/engines/ort-trt``
and builds them for one batch profile (1 .. ``max_batch``, opt ``max_batch``), so a batch of a
size it has not seen does not make it build again in the middle of a stream. The caller
(:mod:`seawatch.inference.factory`) checks the outputs against ONNX Runtime CPU before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seawatch.contracts.card import load_card
from seawatch.contracts.errors import BackendError
from seawatch.inference.engine_cache import ENGINES_DIR
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
ORT_TRT_CACHE = "ort-trt"


def available_gpu_providers() -> list[str]:
    """The GPU execution providers this onnxruntime build lists, best first."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    listed = set(ort.get_available_providers())
    return [p for p in GPU_PROVIDERS if p in listed]


def _cuda_options() -> dict[str, str]:
    """The CUDA EP runs FP32 graphs in FP32: TF32 (its default from onnxruntime 1.17 on
    Ampere and later) would fail the fp32 parity check it is held to."""
    import onnxruntime as ort

    major, minor = (int(part) for part in ort.__version__.split(".")[:2])
    return {"use_tf32": "0"} if (major, minor) >= (1, 17) else {}


def provider_list(
    onnx_path: Path, gpu: list[str], *, max_batch: int, fp16: bool
) -> list[str | tuple[str, dict[str, Any]]]:
    """The ``providers`` argument of the session: each GPU provider in ``gpu`` (the TensorRT
    EP with its cache, batch profile and precision; the CUDA EP without TF32), then the CPU
    for what they leave."""
    card = load_card(Path(onnx_path).parent)
    spec = card.input
    shape = f"{spec.channels}x{spec.height}x{spec.width}"
    cache = Path(onnx_path).parent / ENGINES_DIR / ORT_TRT_CACHE
    providers: list[str | tuple[str, dict[str, Any]]] = []
    for provider in gpu:
        if provider == "CUDAExecutionProvider":
            options = _cuda_options()
            providers.append((provider, options) if options else provider)
            continue
        providers.append(
            (
                provider,
                {
                    "trt_fp16_enable": fp16,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache),
                    "trt_profile_min_shapes": f"{spec.name}:1x{shape}",
                    "trt_profile_opt_shapes": f"{spec.name}:{max_batch}x{shape}",
                    "trt_profile_max_shapes": f"{spec.name}:{max_batch}x{shape}",
                },
            )
        )
    providers.append("CPUExecutionProvider")
    return providers


def new_session(path: Path, options: Any, providers: list) -> Any:
    """The ONNX Runtime session on ``providers`` (one seam: what a GPU answers is here)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


class OnnxRuntimeGpuBackend(OnnxRuntimeBackend):
    """An ONNX Runtime session on the TensorRT or CUDA execution provider."""

    name = "onnxruntime-gpu"

    def __init__(
        self,
        onnx_path: Path,
        *,
        threads: int = 1,
        max_batch: int = 64,
        fp16: bool = True,
        only: tuple[str, ...] = GPU_PROVIDERS,
    ) -> None:
        import onnxruntime as ort

        gpu = [p for p in available_gpu_providers() if p in only]
        if not gpu:
            msg = (
                f"this onnxruntime has no {' or '.join(only)} "
                f"(it lists {ort.get_available_providers()}); `pip install onnxruntime-gpu`"
            )
            raise BackendError(msg)
        providers = provider_list(onnx_path, gpu, max_batch=max_batch, fp16=fp16)
        if "TensorrtExecutionProvider" in gpu:
            (Path(onnx_path).parent / ENGINES_DIR / ORT_TRT_CACHE).mkdir(
                parents=True, exist_ok=True
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = new_session(Path(onnx_path), options, providers)
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
        self.fp16 = fp16 and "TensorrtExecutionProvider" in active
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.threads = threads


__all__ = [
    "GPU_PROVIDERS",
    "ORT_TRT_CACHE",
    "OnnxRuntimeGpuBackend",
    "available_gpu_providers",
    "new_session",
    "provider_list",
]
