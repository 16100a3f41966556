"""The one interface every inference backend implements (the factory that picks one is
:mod:`seawatch.inference.factory`).

A backend runs a float32 NCHW batch through a model and returns its first output (``run``)
or all of them (``run_outputs``). Four implement it: TensorRT (an engine built from the ONNX
file and cached beside it), ONNX Runtime on the TensorRT/CUDA execution provider, PyTorch
CUDA (for artifacts that ship torch weights) and ONNX Runtime on the CPU, which runs
everywhere. ``auto`` takes the best available (:mod:`seawatch.inference.selection`); a
GPU backend that fails to open is skipped with its error as the reason.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np


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


__all__ = ["Backend", "BackendBase"]
