"""The one interface every inference backend implements, and the factory that picks one.

A backend runs a float32 NCHW batch through a model and returns its first output (``run``)
or all of them (``run_outputs``). ONNX Runtime (CPU) is here; TensorRT and the CUDA paths
implement the same interface later.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np

from seawatch.errors import ConfigError


@runtime_checkable
class Backend(Protocol):
    """Runs batches of one model."""

    name: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (N×C×H×W float32) and return the first output (N×K)."""

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run one batch and return every graph output, in graph order."""

    def close(self) -> None:
        """Release the model and its memory."""


class BackendBase:
    """Context-manager plumbing shared by the backends."""

    def close(self) -> None:  # pragma: no cover - overridden
        """Release resources."""

    def __enter__(self) -> BackendBase:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_backend(kind: str, onnx_path: Path, *, threads: int) -> Backend:
    """Open the backend named ``kind`` for the model at ``onnx_path``."""
    if kind == "onnxruntime":
        from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx_path, threads=threads)
    msg = f"inference.backend {kind!r} is not available; use 'onnxruntime'"
    raise ConfigError(msg)


__all__ = ["Backend", "BackendBase", "open_backend"]
