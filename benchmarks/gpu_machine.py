"""What a machine offers ``benchmarks/gpu_check.py``: Python, the GPU (``nvidia-smi``), the
versions of torch, onnxruntime(-gpu), TensorRT and cuda-python, and which GPU backends can run
here (each with the reason when one cannot).

Imports seawatch only inside :func:`availability`, so the check can say that seawatch's
dependencies are missing instead of failing at import.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def environment() -> dict[str, Any]:
    """Python, the GPU, and which of torch, onnxruntime(-gpu), TensorRT and cuda-python."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()} cpus={os.cpu_count()}",
    }
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        env["nvidia_smi"] = f"not available: {exc}"
    for module in ("torch", "onnxruntime", "tensorrt", "cuda", "onnx"):
        try:
            imported = __import__(module)
            env[module] = getattr(imported, "__version__", "importable")
        except Exception as exc:  # a broken install raises more than ImportError
            env[module] = f"not available: {type(exc).__name__}: {exc}"
    if not str(env["torch"]).startswith("not available"):
        import torch

        env["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            env["torch_device"] = torch.cuda.get_device_name(0)
            env["torch_cuda_version"] = torch.version.cuda
    if not str(env["onnxruntime"]).startswith("not available"):
        import onnxruntime as ort

        env["onnxruntime_providers"] = ort.get_available_providers()
    return env


def availability() -> dict[str, str | None]:
    """Each backend checked here: None when this machine can run it, else why not."""
    import ctypes.util
    import importlib.util

    from seawatch.inference.ort_gpu_backend import available_gpu_providers
    from seawatch.inference.selection import probe_tensorrt
    from seawatch.inference.torch_cuda_backend import torch_cuda_unavailable

    providers = available_gpu_providers()
    plankton = REPO / "models" / "plankton"
    # onnxruntime-gpu lists its TensorRT provider whether or not TensorRT is installed
    trt_libs = importlib.util.find_spec("tensorrt") or ctypes.util.find_library("nvinfer")
    return {
        "onnxruntime-cuda": None
        if "CUDAExecutionProvider" in providers
        else "onnxruntime lists no CUDAExecutionProvider (onnxruntime-gpu not installed)",
        "onnxruntime-tensorrt": (
            "onnxruntime lists no TensorrtExecutionProvider"
            if "TensorrtExecutionProvider" not in providers
            else None
            if trt_libs
            else "onnxruntime lists TensorrtExecutionProvider, but TensorRT (libnvinfer) is "
            "not installed"
        ),
        "tensorrt": probe_tensorrt(plankton),
        "torch-cuda": torch_cuda_unavailable(plankton),
    }


__all__ = ["availability", "environment"]
