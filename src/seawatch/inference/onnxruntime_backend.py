"""ONNX Runtime on the CPU: the backend that runs everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seawatch.contracts.errors import BackendError
from seawatch.inference.backend import BackendBase


class OnnxRuntimeBackend(BackendBase):
    """An ONNX Runtime session with a fixed number of intra-op threads."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise BackendError("onnxruntime is missing; `pip install onnxruntime`") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.threads = threads

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch and return the first output; raise BackendError on any failure."""
        return self.run_outputs(batch)[0]

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run one batch and return all outputs; raise BackendError on any failure."""
        try:
            return tuple(self._session.run(self._outputs, {self._input: batch}))
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed on a batch of {len(batch)}: {exc}") from exc

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


__all__ = ["OnnxRuntimeBackend"]
