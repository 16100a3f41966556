"""The prepare stage: a Kafka message -> a frame with its objects and the model's inputs.

headers -> (claim-check fetch) -> decode -> the task head's ``prepare`` (plankton: 8-bit
gray, segment or measure, square crops; otolith and fish: one model input per frame, kept as
uint8 until the batch is stacked). The preparer knows no task by name: it hands each frame to
the head of its ``task`` header. Every failure is a :class:`FrameError` naming its stage and
field; the pipeline sends those messages to the dead-letter topic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from seawatch.config import IngestSettings
from seawatch.contracts.errors import FrameError
from seawatch.contracts.frames import CLAIM_CHECK_TYPE, Frame, SourceRef, parse_headers
from seawatch.contracts.task import PreparedFrame, TaskHead
from seawatch.ingest.decode import DecodeLimits, decode_image, resolve_claim_check
from seawatch.ingest.unreadable import UnreadableRecord


@dataclass(slots=True)
class Rejected:
    """A message that cannot be used, with the error that says why."""

    record: object
    error: FrameError


class FramePreparer:
    """Turns Kafka messages into :class:`PreparedFrame` objects, optionally in threads."""

    def __init__(self, settings: IngestSettings, heads: Mapping[str, TaskHead]) -> None:
        self.settings = settings
        self.heads = heads  # shared with the router: a swapped model prepares from then on
        self.limits = DecodeLimits(
            max_bytes=settings.max_bytes,
            max_pixels=settings.max_pixels,
            max_side=settings.max_side,
            max_decoded_bytes=settings.max_decoded_bytes,
        )
        self._pool = (
            ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
            if settings.decode_threads > 1
            else None
        )

    def prepare_many(self, records: Sequence) -> list[PreparedFrame | Rejected]:
        """Prepare a poll batch, keeping its order; bad messages come back as Rejected."""
        if self._pool is None or len(records) < 2:
            return [self.prepare_one(r) for r in records]
        return list(self._pool.map(self.prepare_one, records))

    def prepare_one(self, record) -> PreparedFrame | Rejected:
        """Prepare one Kafka message (a kafka-python ConsumerRecord)."""
        started = time.perf_counter()
        try:
            return self.prepare_frame(self._frame(record), started=started)
        except FrameError as exc:
            return Rejected(record, exc)
        except Exception as exc:  # a bug or an OpenCV corner case: still never lose the frame
            return Rejected(record, FrameError("prepare", f"{type(exc).__name__}: {exc}"))

    def prepare_frame(self, frame: Frame, *, started: float | None = None) -> PreparedFrame:
        """Fetch, decode, segment and crop one parsed frame; raise FrameError when unusable."""
        started = time.perf_counter() if started is None else started
        head = self.heads.get(frame.meta.task)
        if head is None:
            task = frame.meta.task
            reason = f"no model serves task {task!r}; enable tasks.{task} with its model_dir"
            raise FrameError("route", reason, field="task")
        payload, content_type = frame.payload, frame.meta.content_type
        if content_type == CLAIM_CHECK_TYPE:
            roots = self.settings.claim_check_roots
            payload, content_type = resolve_claim_check(payload, roots, self.limits)
        image = decode_image(payload, content_type, self.limits)
        prepared = head.prepare(frame, image)
        return PreparedFrame.of(frame, prepared, (time.perf_counter() - started) * 1000)

    def _frame(self, record) -> Frame:
        if isinstance(record, UnreadableRecord):
            reason = f"the Kafka client cannot parse this record ({record.error}); it stays "
            reason += "in the topic at its offset; check the producer's headers and CRCs"
            raise FrameError("consume", reason, field="record")
        if record.value is None or len(record.value) == 0:
            raise FrameError("headers", "the message value is empty", field="value")
        headers = [(k, v) for k, v in (record.headers or []) if v is not None]
        meta = parse_headers(headers, topic=record.topic, key=record.key, now_ns=time.time_ns())
        return Frame(
            meta=meta,
            ref=SourceRef(record.topic, record.partition, record.offset),
            payload=record.value,
            broker_ts_ms=record.timestamp,
            headers=headers,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


__all__ = ["FramePreparer", "Rejected"]
