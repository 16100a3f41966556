"""Routing a batch of prepared frames to the task heads and back into records.

Frames are grouped by task (the ``task`` header, or the ``frames.<task>`` topic): plankton
objects of every frame go through the classifier together, otolith frames through the
anomaly detector and fish frames through the re-identifier, one backend call per task and
chunk. A failing backend fails only its own task's frames. Flagged otoliths get a thumbnail
and a heat-map overlay to write as evidence before the record is stored.

Three steps, so that the thread that runs the models does nothing else: :meth:`stage`
stacks each task's inputs, :meth:`infer` runs the backends (the inference thread), and
:meth:`finish` turns the outputs into records (top-k, thresholds, gallery matching and
enrolment, evidence). :meth:`route` does the three in a row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import BackendError
from seawatch.contracts.evidence import evidence_paths
from seawatch.contracts.preprocess import batch_tensor, planar_batch
from seawatch.contracts.records import FishRecord, ObjectRecord, OtolithRecord
from seawatch.inference.classifier import PlanktonClassifier
from seawatch.ingest.prepare import PreparedFrame

if TYPE_CHECKING:
    from seawatch.inference.fish import FishIdentifier
    from seawatch.inference.otolith import OtolithDetector


@dataclass(slots=True)
class TaskResult:
    """What the heads say about one frame, before it becomes a FrameRecord."""

    card: ModelCard
    infer_ms: float
    objects: tuple[ObjectRecord, ...] = ()
    otolith: OtolithRecord | None = None
    fish: FishRecord | None = None
    evidence: list[tuple[str, np.ndarray]] = field(default_factory=list)


@dataclass(slots=True)
class TaskWork:
    """One task's share of a batch: its frames, stacked inputs, then outputs or error."""

    task: str
    positions: list[int]
    tensor: np.ndarray | None = None  # None: nothing to run (plankton frames, no objects)
    outputs: object = None
    error: BackendError | None = None
    infer_ms: float = 0.0


@dataclass(slots=True)
class Routed:
    """Results by position in the batch, and the frames a task's backend failed on."""

    results: dict[int, TaskResult] = field(default_factory=dict)
    failed: list[tuple[int, BackendError]] = field(default_factory=list)


class TaskRouter:
    """Holds one head per served task; ``None`` means the task is not served here."""

    def __init__(
        self,
        plankton: PlanktonClassifier,
        otolith: OtolithDetector | None = None,
        fish: FishIdentifier | None = None,
        *,
        enrol_new_fish: bool = True,
        gallery_path: Path | None = None,
    ) -> None:
        self.plankton = plankton
        self.otolith = otolith
        self.fish = fish
        self.enrol_new_fish = enrol_new_fish
        self.gallery_path = gallery_path

    @property
    def cards(self) -> dict[str, ModelCard]:
        """The model card of every served task."""
        heads = {"plankton": self.plankton, "otolith": self.otolith, "fish": self.fish}
        return {task: head.card for task, head in heads.items() if head is not None}

    def whole_frame_inputs(self) -> dict:
        """``task -> input8`` for the tasks whose frames are one model input each: their
        prepared crop is the uint8 RGB input, converted to float for the whole batch when
        :meth:`stage` stacks it."""
        heads = {"otolith": self.otolith, "fish": self.fish}
        return {task: head.input8 for task, head in heads.items() if head is not None}

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
            item = TaskWork(task, positions)
            if task == "plankton":
                crops = [crop for i in positions for crop in frames[i].crops]
                item.tensor = batch_tensor(crops) if crops else None
            elif self._served(task) is None:  # the preparer refuses such frames; a guard
                msg = f"no model serves task {task!r}; set inference.{task}_model_dir"
                item.error = BackendError(msg)
            else:
                item.tensor = planar_batch([frames[i].crops[0] for i in positions])
            work.append(item)
        return work

    def infer(self, work: list[TaskWork]) -> None:
        """Run the staged inputs through the backends (nothing else: the inference thread)."""
        for item in work:
            if item.tensor is None or item.error is not None:
                continue
            started = time.perf_counter()
            try:
                item.outputs = self._served(item.task).infer(item.tensor)
            except BackendError as exc:
                item.error = exc
            item.infer_ms = (time.perf_counter() - started) * 1000

    def finish(self, frames: list[PreparedFrame], work: list[TaskWork]) -> Routed:
        """Turn each task's outputs into results; a failed task fails only its frames."""
        routed = Routed()
        finish = {"plankton": self._plankton, "otolith": self._otolith, "fish": self._fish}
        for item in work:
            if item.error is not None:
                routed.failed.extend((i, item.error) for i in item.positions)
                continue
            finish[item.task](frames, item, routed)
        return routed

    def close(self) -> None:
        """Close every head's backend."""
        for head in (self.plankton, self.otolith, self.fish):
            if head is not None:
                head.backend.close()

    def _served(self, task: str) -> PlanktonClassifier | OtolithDetector | FishIdentifier | None:
        """The head serving ``task``; None when it is not served here (or unknown)."""
        return {"plankton": self.plankton, "otolith": self.otolith, "fish": self.fish}.get(task)

    def _plankton(self, frames: list[PreparedFrame], work: TaskWork, out: Routed) -> None:
        predictions = self.plankton.interpret(work.outputs) if work.tensor is not None else []
        per_object_ms = work.infer_ms / max(1, len(predictions))
        cursor = 0
        for i in work.positions:
            prepared = frames[i]
            n = len(prepared.objects)
            answers = predictions[cursor : cursor + n]
            objects = tuple(
                ObjectRecord(
                    index=obj.index,
                    bbox=obj.bbox,
                    taxon=pred.taxon,
                    confidence=pred.confidence,
                    top_k=pred.top_k,
                    morph=obj.morph,
                )
                for obj, pred in zip(prepared.objects, answers, strict=True)
            )
            cursor += n
            out.results[i] = TaskResult(self.plankton.card, per_object_ms * n, objects=objects)

    def _otolith(self, frames: list[PreparedFrame], work: TaskWork, out: Routed) -> None:
        from seawatch.inference.otolith import overlay_heatmap

        head = self.otolith
        answers = head.interpret(work.outputs)
        per_frame_ms = work.infer_ms / len(work.positions)
        for i, answer in zip(work.positions, answers, strict=True):
            meta, evidence = frames[i].frame.meta, []
            thumb_path = heat_path = None
            if answer.anomaly and frames[i].thumbnail is not None:
                thumb_path, heat_path = evidence_paths(meta, "otolith")
                overlay = overlay_heatmap(frames[i].thumbnail, answer.heatmap, answer.threshold)
                evidence = [(thumb_path, frames[i].thumbnail), (heat_path, overlay)]
            record = OtolithRecord(
                specimen_id=meta.specimen_id,
                score=round(answer.score, 6),
                anomaly=answer.anomaly,
                threshold=answer.threshold,
                thumbnail=thumb_path,
                heatmap=heat_path,
            )
            out.results[i] = TaskResult(head.card, per_frame_ms, otolith=record, evidence=evidence)

    def _fish(self, frames: list[PreparedFrame], work: TaskWork, out: Routed) -> None:
        head = self.fish
        embeddings = head.normalise(work.outputs)
        sightings = head.decide(embeddings, enrol_new=self.enrol_new_fish)
        per_frame_ms = work.infer_ms / len(work.positions)
        if self.gallery_path is not None and any(s.new_individual for s in sightings):
            head.gallery.save(self.gallery_path)  # before the records: enrolments survive
        for i, sighting in zip(work.positions, sightings, strict=True):
            record = FishRecord(
                individual=sighting.individual,
                similarity=round(sighting.similarity, 6),
                new_individual=sighting.new_individual,
                provisional=sighting.provisional,
            )
            out.results[i] = TaskResult(head.card, per_frame_ms, fish=record)


__all__ = ["Routed", "TaskResult", "TaskRouter", "TaskWork"]
