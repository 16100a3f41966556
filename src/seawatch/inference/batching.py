"""Running a batch through a model in calls of at most ``max_batch`` rows: the one chunking
rule of every task head (an engine's optimisation profile, or memory, bounds a call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def run_in_chunks(run: Callable[[np.ndarray], T], tensor: np.ndarray, max_batch: int) -> list[T]:
    """``run`` on consecutive slices of ``tensor`` of at most ``max_batch`` rows, in order."""
    if max_batch < 1:
        msg = f"max_batch must be at least 1, got {max_batch}"
        raise ValueError(msg)
    return [run(tensor[start : start + max_batch]) for start in range(0, len(tensor), max_batch)]


__all__ = ["run_in_chunks"]
