"""The prepare stage: a Kafka message -> a frame with its objects and the model's input.

Plankton: headers -> (claim-check fetch) -> decode -> 8-bit gray -> segment (full) or measure
(roi) -> square crops for the classifier. Otolith and fish frames are one specimen each: the
decoded image goes whole through its task's own ``input8`` (one model input per frame, kept
as uint8 and converted to float once per batch by the router), and otolith frames keep a
thumbnail for the evidence of a flag. Every failure is a :class:`FrameError` naming its
stage and field; the pipeline sends those messages to the dead-letter topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from seawatch.config import IngestSettings
from seawatch.contracts.errors import FrameError
from seawatch.contracts.evidence import thumbnail
from seawatch.contracts.frames import CLAIM_CHECK_TYPE, Frame, FrameKind, SourceRef, parse_headers
from seawatch.contracts.objects import SegmentedObject
from seawatch.contracts.preprocess import prepare_roi, to_gray8
from seawatch.contracts.quality import FrameQuality, measure_quality
from seawatch.ingest.decode import DecodeLimits, decode_image, resolve_claim_check
from seawatch.ingest.segment import SegmentParams, measure_roi, segment_full
from seawatch.ingest.unreadable import UnreadableRecord

WholeFrameInput = Callable[[np.ndarray], np.ndarray]  # decoded image -> one (uint8) model input
THUMBNAIL_TASKS = frozenset({"otolith"})  # tasks whose flagged frames keep evidence


@dataclass(slots=True)
class PreparedFrame:
    """A decoded, segmented frame and its objects' model inputs (one crop per object)."""

    frame: Frame
    objects: list[SegmentedObject]
    crops: list[np.ndarray]
    decode_ms: float
    thumbnail: np.ndarray | None = None
    quality: FrameQuality | None = None  # full plankton frames only


@dataclass(slots=True)
class Rejected:
    """A message that cannot be used, with the error that says why."""

    record: object
    error: FrameError


class FramePreparer:
    """Turns Kafka messages into :class:`PreparedFrame` objects, optionally in threads."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        input_size: int,
        whole_frame: Mapping[str, WholeFrameInput] | None = None,
    ) -> None:
        self.settings = settings
        self.input_size = input_size
        self.whole_frame = dict(whole_frame or {})
        self.limits = DecodeLimits(
            max_bytes=settings.max_bytes,
            max_pixels=settings.max_pixels,
            max_side=settings.max_side,
            max_decoded_bytes=settings.max_decoded_bytes,
        )
        seg = settings.segmentation
        self.params = SegmentParams(
            polarity=seg.polarity,
            min_esd_px=seg.min_esd_px,
            min_esd_um=seg.min_esd_um,
            threshold=seg.threshold,
            background_kernel=seg.background_kernel,
            pad_px=seg.pad_px,
            max_objects=seg.max_objects,
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
        payload, content_type = frame.payload, frame.meta.content_type
        if content_type == CLAIM_CHECK_TYPE:
            roots = self.settings.claim_check_roots
            payload, content_type = resolve_claim_check(payload, roots, self.limits)
        image = decode_image(payload, content_type, self.limits)
        task = frame.meta.task
        quality = None
        if task == "plankton":
            gray = to_gray8(image)
            objects = self._segment(gray, frame)
            crops = [prepare_roi(obj.image, self.input_size) for obj in objects]
            thumb = None
            if frame.meta.frame_kind is FrameKind.FULL:
                quality = measure_quality(gray)
        elif task in self.whole_frame:
            objects, crops = [], [self._whole(task, image)]
            thumb = thumbnail(image) if task in THUMBNAIL_TASKS else None
        else:
            reason = f"no model serves task {task!r}; set inference.{task}_model_dir"
            raise FrameError("route", reason, field="task")
        decode_ms = (time.perf_counter() - started) * 1000
        return PreparedFrame(frame, objects, crops, decode_ms, thumb, quality)

    def _whole(self, task: str, image: np.ndarray) -> np.ndarray:
        try:
            return self.whole_frame[task](image)
        except ValueError as exc:
            raise FrameError("prepare", f"{task} input: {exc}") from exc

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

    def _segment(self, gray: np.ndarray, frame: Frame) -> list[SegmentedObject]:
        pixel_size = frame.meta.pixel_size_um
        try:
            if frame.meta.frame_kind is FrameKind.FULL:
                return segment_full(gray, self.params, pixel_size)
            return [measure_roi(gray, self.params, pixel_size)]
        except FrameError:
            raise
        except Exception as exc:
            raise FrameError("segment", f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


__all__ = ["FramePreparer", "PreparedFrame", "Rejected"]
