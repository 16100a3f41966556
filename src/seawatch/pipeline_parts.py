"""What the daemon loop (:mod:`seawatch.pipeline`) passes between its stages and the
interfaces of the collaborators it calls: a poll batch on its way, a prepared frame seen as
its Kafka message (for the dead-letter queue), the alert rules and the live model swaps."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from seawatch.alerts.model import Alert
from seawatch.contracts.records import FrameRecord
from seawatch.contracts.task import PreparedFrame
from seawatch.inference.router import TaskWork


class Alerting(Protocol):
    """The alert rules with their state (``alerts.engine.AlertEngine``, or
    ``alerts.partitioned.PartitionedAlerts`` tied to the owned partitions): the alerts of a
    batch's stored records, of the clock; ``checkpoint`` makes the state durable once its
    alerts are (False: do not commit the batch's offsets yet)."""

    def evaluate(self, records: list[FrameRecord]) -> list[Alert]: ...
    def tick(self) -> list[Alert]: ...
    def checkpoint(self, force: bool = False) -> bool: ...


class ModelUpdates(Protocol):
    """Live model swaps (:class:`seawatch.model_swap.ModelSwapper`)."""

    def poll(self) -> None:
        """Between batches: swap in a promoted model that passed its checks."""

    def batch_stored(self) -> None:
        """A batch was stored: heads retired before it may be closed."""

    def close(self) -> None:
        """Close what is left (the loop has stopped)."""


@dataclass(slots=True)
class Batch:
    """One poll batch on its way through the stages."""

    records: list
    frames: list[PreparedFrame]
    polled_at: float
    work: list[TaskWork] = field(default_factory=list)
    results: list[FrameRecord] = field(default_factory=list)
    evidence: list[tuple[str, np.ndarray]] = field(default_factory=list)
    crops_written: Future[None] | None = None  # its kept crops, written while it is inferred


class RecordView:
    """A prepared frame seen as the Kafka message it came from (for the DLQ)."""

    def __init__(self, prepared: PreparedFrame) -> None:
        frame = prepared.frame
        self.topic, self.partition, self.offset = (
            frame.ref.topic,
            frame.ref.partition,
            frame.ref.offset,
        )
        self.key = frame.meta.instrument.encode()
        self.value = frame.payload
        self.headers = frame.headers


__all__ = ["Alerting", "Batch", "ModelUpdates", "RecordView"]
