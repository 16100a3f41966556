"""Streams for the scale-out tests: instruments that keep sending small frames in real time,
a fixed stream of small full frames that fires quality alerts, and the alerts topic read raw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import cv2
import numpy as np

from seawatch.contracts.frames import FrameKind, FrameMeta
from seawatch.ingest.kafka_io import Publisher
from seawatch.ingest.publish import FrameMessage, publish_messages
from seawatch.models.plankton.synthetic import render_full_frame, render_roi, sample_taxa

CRUISE = "scaleout"


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return data.tobytes()


def frame(instrument: str, captured_ns: int, value: bytes, kind: FrameKind) -> FrameMessage:
    """One plankton frame of ``instrument``, keyed by it."""
    meta = FrameMeta(
        instrument=instrument,
        task="plankton",
        captured_at_ns=captured_ns,
        frame_kind=kind,
        content_type="image/png",
        cruise=CRUISE,
        station="st-01",
    )
    return FrameMessage(instrument.encode(), value, meta)


class SteadyInstruments(threading.Thread):
    """Publishes a small ROI frame of every instrument in ``sending`` every ``period_s`` (at
    capture time now) until stopped; ``stops_early`` send only for their first ``early_s``."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        sending: Sequence[str],
        stops_early: Sequence[str] = (),
        *,
        period_s: float = 0.25,
        early_s: float = 3.0,
    ) -> None:
        super().__init__(name="instruments", daemon=True)
        rng = np.random.default_rng(23)
        self.images = [_png(render_roi(t, rng)) for t in sample_taxa(rng, 8)]
        self.bootstrap, self.topic = bootstrap, topic
        self.sending, self.stops_early = list(sending), list(stops_early)
        self.period_s, self.early_s = period_s, early_s
        self.sent: dict[str, int] = dict.fromkeys([*sending, *stops_early], 0)
        self.last_sent: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        publisher = Publisher(self.bootstrap)
        started = time.monotonic()
        try:
            while not self._halt.is_set():
                early = time.monotonic() - started < self.early_s
                instruments = self.sending + (self.stops_early if early else [])
                now = time.time_ns()
                messages = [
                    frame(name, now, self.images[(now // 7 + i) % 8], FrameKind.ROI)
                    for i, name in enumerate(instruments)
                ]
                publish_messages(publisher, self.topic, messages)
                for name in instruments:
                    self.sent[name] += 1
                    self.last_sent[name] = time.monotonic()
                self._halt.wait(self.period_s)
        finally:
            publisher.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def quality_stream(instruments: Sequence[str], per_instrument: int, start_ns: int) -> list:
    """Small full frames, 100 ms of capture time apart per instrument, every third one blank
    (a blurred, empty frame): the ``frame_quality`` rule fires on them again and again, and
    what it fires depends on the frames alone (segmentation, not the model's batches)."""
    rng = np.random.default_rng(5)
    good = [_png(render_full_frame(rng, width=320, height=240, n_objects=4)[0]) for _ in range(6)]
    blank = _png(np.full((240, 320), 225, np.uint8))
    messages = []
    for i in range(per_instrument):
        for j, name in enumerate(instruments):
            value = blank if i % 3 == 0 else good[(i + j) % len(good)]
            messages.append(frame(name, start_ns + i * 100_000_000, value, FrameKind.FULL))
    return messages


def publish(bootstrap: str, topic: str, messages: list) -> None:
    publisher = Publisher(bootstrap)
    try:
        publish_messages(publisher, topic, messages)
    finally:
        publisher.close()


def raw_messages(bootstrap: str, topic: str, idle_s: float = 3.0) -> list:
    """Every message on ``topic`` from its start (no group), until ``idle_s`` passes with
    nothing new: raw, duplicates included."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    records: list = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=int(idle_s * 1000))
            if not polled:
                break
            for batch in polled.values():
                records.extend(batch)
    finally:
        consumer.close()
    return records
