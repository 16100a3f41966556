"""Routing a batch of prepared frames to the task heads and back into results.

Frames are grouped by task (the ``task`` header, or the ``frames.<task>`` topic) and each
task's head gets its frames together: one stacked tensor, one backend call (in chunks of its
``max_batch``), one ``finish``. A failing backend fails only its own task's frames. The
router knows no task by name: it serves the heads it was given (built from ``tasks:`` by the
registry).

Three steps, so that the thread that runs the models does nothing else: :meth:`stage`
stacks each task's inputs, :meth:`infer` runs the backends (the inference thread), and
:meth:`finish` turns the outputs into results (thresholds, gallery matching, evidence).
:meth:`route` does the three in a row.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import BackendError
from seawatch.contracts.task import PreparedFrame, TaskHead, TaskResult, heads_by_name

RECORDED_ROWS = 32  # rows of the last live batch kept per task


@dataclass(slots=True)
class TaskWork:
    """One task's share of a batch: its frames, the head that stacked them (it infers and
    finishes them too, even if a new model is swapped in meanwhile), stacked inputs, then
    outputs or error."""

    task: str
    positions: list[int]
    head: TaskHead | None = None
    tensor: np.ndarray | None = None  # None: nothing to run (plankton frames, no objects)
    outputs: Any = None
    error: BackendError | None = None
    infer_ms: float = 0.0


@dataclass(slots=True)
class Routed:
    """Results by position in the batch (with the card of the model that made each), and
    the frames a task's backend failed on."""

    results: dict[int, tuple[TaskResult, ModelCard]] = field(default_factory=dict)
    failed: list[tuple[int, BackendError]] = field(default_factory=list)


class TaskRouter:
    """Holds one head per served task."""

    def __init__(self, heads: Sequence[TaskHead] | Mapping[str, TaskHead]) -> None:
        self.heads: dict[str, TaskHead] = dict(
            heads if isinstance(heads, Mapping) else heads_by_name(heads)
        )
        self._recorded: dict[str, np.ndarray] = {}  # the last stacked rows per task

    @property
    def cards(self) -> dict[str, ModelCard]:
        """The model card of every served task."""
        return {task: head.card for task, head in self.heads.items()}

    def route(self, frames: list[PreparedFrame]) -> Routed:
        """Run every frame through its task's head (stage, infer and finish in a row)."""
        work = self.stage(frames)
        self.infer(work)
        return self.finish(frames, work)

    def stage(self, frames: list[PreparedFrame]) -> list[TaskWork]:
        """Group ``frames`` by task and stack each task's model inputs."""
        by_task: dict[str, list[int]] = {}
        for i, prepared in enumerate(frames):
            by_task.setdefault(prepared.frame.meta.task, []).append(i)
        work = []
        for task, positions in by_task.items():
            head = self.heads.get(task)
            item = TaskWork(task, positions, head)
            if head is None:  # the preparer refuses such frames; a guard
                item.error = BackendError(f"no model serves task {task!r}; enable tasks.{task}")
            else:
                item.tensor = head.stack([frames[i] for i in positions])
                if item.tensor is not None:
                    self._recorded[task] = item.tensor[:RECORDED_ROWS]
            work.append(item)
        return work

    def infer(self, work: list[TaskWork]) -> None:
        """Run the staged inputs through the backends (nothing else: the inference thread)."""
        for item in work:
            if item.tensor is None or item.error is not None:
                continue
            started = time.perf_counter()
            try:
                item.outputs = item.head.infer(item.tensor)
            except BackendError as exc:
                item.error = exc
            item.infer_ms = (time.perf_counter() - started) * 1000

    def finish(self, frames: list[PreparedFrame], work: list[TaskWork]) -> Routed:
        """Turn each task's outputs into results; a failed task fails only its frames."""
        routed = Routed()
        for item in work:
            if item.error is not None:
                routed.failed.extend((i, item.error) for i in item.positions)
                continue
            head = item.head
            results = head.finish([frames[i] for i in item.positions], item.outputs, item.infer_ms)
            if len(results) != len(item.positions):
                msg = (
                    f"task {item.task!r} finished {len(results)} results for "
                    f"{len(item.positions)} frames; a head returns one result per frame"
                )
                routed.failed.extend((i, BackendError(msg)) for i in item.positions)
                continue
            for i, result in zip(item.positions, results, strict=True):
                routed.results[i] = (result, head.card)
        return routed

    def recorded(self, task: str) -> np.ndarray | None:
        """Rows of the last batch stacked for ``task`` (live inputs, to check a new model)."""
        return self._recorded.get(task)

    def swap(self, head: TaskHead) -> TaskHead | None:
        """Serve ``head`` for its task from the next staged batch on; return the head it
        replaces (still needed by the batches it staged: the caller closes it later)."""
        old = self.heads.get(head.name)
        self.heads[head.name] = head
        return old

    def close(self) -> None:
        """Close every head."""
        for head in self.heads.values():
            head.close()


__all__ = ["Routed", "TaskRouter", "TaskWork"]
