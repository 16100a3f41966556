"""The task interface: what a served task (plankton, otolith, fish, or a plug-in of yours)
gives the daemon, and the one place where a frame's record is assembled.

A task is a :class:`TaskPlugin` in the registry (:mod:`seawatch.registry`), keyed by the
frames' ``task`` header. Its ``load`` builds a :class:`TaskHead` from the task's settings;
the head owns its model's pre- and post-processing, so the exported graph and the live path
cannot drift. The pipeline calls a head in four steps, on three threads:

``prepare``  one decoded frame -> its objects and model inputs    (decode threads)
``stack``    the inputs of a batch's frames -> one tensor         (loop thread)
``infer``    the tensor -> the model's outputs                     (inference thread)
``finish``   the outputs -> one :class:`TaskResult` per frame      (loop thread)

then ``close`` once. A head raises :class:`~seawatch.contracts.errors.FrameError` in
``prepare`` for a frame it cannot use (the frame goes to the dead-letter topic) and
:class:`~seawatch.contracts.errors.BackendError` in ``infer`` (every frame of the call goes
there, with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from seawatch.contracts.card import ModelCard
from seawatch.contracts.crops import Crop
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.frames import Frame
from seawatch.contracts.objects import SegmentedObject
from seawatch.contracts.quality import FrameQuality
from seawatch.contracts.records import (
    FieldValue,
    FishRecord,
    FrameRecord,
    ObjectRecord,
    OtolithRecord,
)

Evidence = tuple[str, np.ndarray]  # path relative to the evidence root, BGR uint8 image


@dataclass(slots=True)
class TaskInputs:
    """What a head's ``prepare`` makes of one decoded frame."""

    inputs: list[np.ndarray]  # model inputs: one per object (plankton) or one per frame
    objects: list[SegmentedObject] = field(default_factory=list)
    thumbnail: np.ndarray | None = None  # kept for evidence (flagged otoliths)
    quality: FrameQuality | None = None  # full plankton frames
    views: list[Crop] = field(default_factory=list)  # encoded images kept for review
    pending: Any = None  # work the head does on the inference thread (a frame to cut)


@dataclass(slots=True)
class PreparedFrame:
    """A decoded frame with its objects and model inputs, on its way to its head."""

    frame: Frame
    objects: list[SegmentedObject]
    crops: list[np.ndarray]  # the model inputs (TaskInputs.inputs)
    decode_ms: float
    thumbnail: np.ndarray | None = None
    quality: FrameQuality | None = None
    views: list[Crop] = field(default_factory=list)  # encoded crops kept for review
    pending: Any = None  # TaskInputs.pending: the head fills objects and views in finish

    @classmethod
    def of(cls, frame: Frame, prepared: TaskInputs, decode_ms: float) -> PreparedFrame:
        """A frame and what its head's ``prepare`` made of it."""
        return cls(
            frame,
            prepared.objects,
            prepared.inputs,
            decode_ms,
            prepared.thumbnail,
            prepared.quality,
            prepared.views,
            prepared.pending,
        )


@dataclass(slots=True)
class TaskResult:
    """What a head says about one frame, before it becomes a :class:`FrameRecord`.

    A built-in task fills its own part (``objects``, ``otolith`` or ``fish``); a plug-in
    task puts its outputs in ``fields`` (scalars, stored as the fields of a measurement named
    after the task).
    """

    infer_ms: float
    objects: tuple[ObjectRecord, ...] = ()
    otolith: OtolithRecord | None = None
    fish: FishRecord | None = None
    sightings: tuple[FishRecord, ...] = ()  # every fish of a whole fish frame; ``fish`` = first
    fields: tuple[tuple[str, FieldValue], ...] = ()
    evidence: list[Evidence] = field(default_factory=list)


@runtime_checkable
class TaskHead(Protocol):
    """A served task: one model with its pre- and post-processing."""

    name: str  # the registry key: the frames' ``task`` header
    card: ModelCard

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        """One decoded image (uint8/uint16, gray/BGR/BGRA) -> its objects and model inputs."""

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray | None:
        """The inputs of ``frames`` as one batch tensor; None when there is nothing to run."""

    def infer(self, tensor: np.ndarray) -> Any:
        """The model alone (the inference thread): outputs for every row of ``tensor``."""

    def finish(
        self, frames: Sequence[PreparedFrame], outputs: Any, infer_ms: float
    ) -> list[TaskResult]:
        """Outputs (None when ``stack`` gave None) -> one result per frame, in order."""

    def close(self) -> None:
        """Release the model."""


@dataclass(frozen=True, slots=True)
class TaskPlugin:
    """A task as the registry knows it: its name and how to build its head.

    ``load(task_settings, settings)`` gets the task's own section of ``tasks:`` and the whole
    settings; it raises :class:`~seawatch.contracts.errors.ConfigError` for a bad option.
    ``sample_inputs(card, n, seed)``: ``n`` model inputs like live ones (parity checks, INT8
    calibration); ``model_input(card, image)``: one decoded image -> one model input;
    ``validate(head, task_settings)``: the head's score on the task's validation set (higher
    is better; None when there is none), the gate a live model swap passes.
    """

    name: str
    load: Callable[[Any, Any], TaskHead]
    sample_inputs: Callable[[ModelCard, int, int], np.ndarray] | None = None
    model_input: Callable[[ModelCard, np.ndarray], np.ndarray] | None = None
    validate: Callable[[TaskHead, Any], float | None] | None = None
    description: str = ""


def build_record(
    prepared: PreparedFrame, result: TaskResult, card: ModelCard, now_ms: float
) -> FrameRecord:
    """The one place a frame's record is assembled: the frame, its head's result, the model
    that scored it (name and weights-identifying version), timings and latency."""
    frame = prepared.frame
    return FrameRecord(
        meta=frame.meta,
        ref=frame.ref,
        model=card.name,
        model_version=card.release,
        objects=result.objects,
        decode_ms=round(prepared.decode_ms, 3),
        infer_ms=round(result.infer_ms, 3),
        latency_ms=round(max(0.0, now_ms - frame.broker_ts_ms), 3),
        otolith=result.otolith,
        fish=result.fish,
        quality=prepared.quality,
        fields=result.fields,
        sightings=result.sightings,
    )


class TaskOptions(BaseModel):
    """Base of a task's ``options`` model: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_O = TypeVar("_O", bound=TaskOptions)


def parse_options(model: type[_O], task: str, options: Mapping[str, Any]) -> _O:
    """Validate a task's ``options``; a bad one fails with its setting path and the fix."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"tasks.{task}.options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            f" (got {e.get('input')!r})"
            for e in exc.errors()
        )
        allowed = ", ".join(model.model_fields)
        msg = f"{problems}; fix it in the tasks section (allowed options: {allowed or 'none'})"
        raise ConfigError(msg) from None


def heads_by_name(heads: Sequence[TaskHead]) -> Mapping[str, TaskHead]:
    """``name -> head``; refuses two heads of one name."""
    by_name: dict[str, TaskHead] = {}
    for head in heads:
        if head.name in by_name:
            msg = f"two heads serve task {head.name!r}; each task is served by one head"
            raise ValueError(msg)
        by_name[head.name] = head
    return by_name


__all__ = [
    "Evidence",
    "PreparedFrame",
    "TaskHead",
    "TaskInputs",
    "TaskOptions",
    "TaskPlugin",
    "TaskResult",
    "build_record",
    "heads_by_name",
    "parse_options",
]
