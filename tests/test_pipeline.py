"""The pipeline's guarantees, on a real :class:`Pipeline` with in-memory collaborators: a
source, a sink and a dead-letter publisher that write one shared event log, so the order of
flushes and commits can be checked (no broker, no network)."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from seawatch.config import IngestSettings
from seawatch.contracts.errors import BackendError, StorageError
from seawatch.contracts.frames import FrameKind, FrameMeta, encode_headers
from seawatch.contracts.records import FrameRecord
from seawatch.inference.router import TaskRouter
from seawatch.ingest.dead_letters import DeadLetterQueue
from seawatch.ingest.prepare import FramePreparer
from seawatch.pipeline import Pipeline
from tests.heads import WholeFrameHead

TOPIC = "frames.toy"
BASE_NS = 1_700_000_000 * 10**9
Event = tuple[str, tuple[int, ...]]  # ("poll" | "flush" | "dlq" | "commit" | ..., offsets)


@dataclass
class Record:
    """A kafka-python ConsumerRecord, as far as the pipeline reads one."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp: int


def _headers(offset: int, task: str = "toy") -> list[tuple[str, bytes]]:
    meta = FrameMeta(
        instrument="cam-1",
        task=task,
        captured_at_ns=BASE_NS + offset,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
    )
    return encode_headers(meta)


def good(offset: int) -> Record:
    """A valid frame: an 8x8 PNG of one grey level (offset + 1), so its total is known."""
    ok, data = cv2.imencode(".png", np.full((8, 8, 3), offset + 1, np.uint8))
    assert ok
    return Record(TOPIC, 0, offset, b"cam-1", data.tobytes(), _headers(offset), 1_000 + offset)


def broken(offset: int, kind: str) -> Record:
    """An unusable frame: ``empty`` value, ``garbage`` image bytes or an ``unserved`` task."""
    record = good(offset)
    if kind == "empty":
        record.value = b""
    elif kind == "garbage":
        record.value = b"\x89PNG not really a png"
    else:
        record.headers = _headers(offset, task="unserved")
    return record


class MemorySource:
    """The FrameSource methods Pipeline uses; paused, it returns nothing (as Kafka does)."""

    def __init__(self, records: Sequence[Record], log: list[Event]) -> None:
        self.pending = deque(records)
        self.log = log
        self.commits: list[tuple[int, ...]] = []
        self.paused = False
        self.pauses = self.resumes = self.polls_while_paused = 0

    def poll_batch(self, max_records: int, max_wait_ms: int, idle_ms: int = 200) -> list[Record]:
        if self.paused:
            self.polls_while_paused += 1
            return []
        batch = [self.pending.popleft() for _ in range(min(max_records, len(self.pending)))]
        if batch:
            self.log.append(("poll", tuple(r.offset for r in batch)))
        return batch

    def commit(self, records: list[Record]) -> None:
        offsets = tuple(r.offset for r in records)
        self.commits.append(offsets)
        self.log.append(("commit", offsets))

    @property
    def committed(self) -> list[int]:
        return [offset for batch in self.commits for offset in batch]

    def pause(self) -> None:
        self.paused, self.pauses = True, self.pauses + 1

    def resume(self) -> None:
        self.paused, self.resumes = False, self.resumes + 1

    def lag(self) -> int:
        return 0

    def close(self) -> None:
        pass


class MemorySink:
    """A sink whose records are durable at ``flush``; it can fail a flush or saturate."""

    name = "memory"

    def __init__(self, log: list[Event]) -> None:
        self.log = log
        self.durable: list[FrameRecord] = []
        self._added: list[FrameRecord] = []
        self.flushes = 0
        self.fail_at_flush: int | None = None  # this flush (1-based) raises StorageError
        self.saturate_at_flush: int | None = None  # after this flush, saturated() says True
        self.full_checks = 0  # ... this many times
        self._was_full = False

    def add(self, records: Sequence[FrameRecord]) -> None:
        self._added.extend(records)

    def flush(self) -> None:
        self.flushes += 1
        if self.flushes == self.fail_at_flush:
            raise StorageError("disk full")
        self.durable.extend(self._added)
        self.log.append(("flush", tuple(r.ref.offset for r in self._added)))
        self._added = []
        if self.flushes == self.saturate_at_flush:
            self.full_checks = 5

    def saturated(self) -> bool:
        full = self.full_checks > 0
        self.full_checks -= full
        if full != self._was_full:
            self.log.append(("full" if full else "open", ()))
            self._was_full = full
        return full

    def close(self) -> None:
        pass

    @property
    def offsets(self) -> list[int]:
        return [r.ref.offset for r in self.durable]


class _Acked:
    is_done = True

    def succeeded(self) -> bool:
        return True


@dataclass
class DeadLetter:
    topic: str
    value: bytes
    key: bytes | None
    headers: dict[str, bytes]

    @property
    def offset(self) -> int:
        return int(self.headers["source"].decode().rsplit("/", 1)[1])


@dataclass
class FakePublisher:
    """What DeadLetterQueue calls on a Publisher; every send is acknowledged at flush."""

    log: list[Event]
    max_message_bytes: int = 1 << 20
    sent: list[DeadLetter] = field(default_factory=list)
    _queued: list[DeadLetter] = field(default_factory=list)

    def send(self, topic: str, value: bytes, key: bytes | None, headers: list) -> _Acked:
        self._queued.append(DeadLetter(topic, value, key, dict(headers)))
        return _Acked()

    def flush(self) -> None:
        self.sent += self._queued
        self.log.append(("dlq", tuple(m.offset for m in self._queued)))
        self._queued = []

    def reconnect(self) -> None:
        pass


class FailingSecondCall(WholeFrameHead):
    """Its backend fails (``fail``) on the second call only, i.e. the second batch."""

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        self.fail = BackendError("device lost") if self.calls == 1 else None
        return super().infer(tensor)


class SlowFirstCalls(WholeFrameHead):
    """Its backend takes 60, 40, 20 ms for the first batches: several stay in flight."""

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        time.sleep(max(0.0, 0.06 - 0.02 * self.calls))
        return super().infer(tensor)


@dataclass
class Rig:
    log: list[Event]
    source: MemorySource
    sink: MemorySink
    publisher: FakePublisher
    head: WholeFrameHead
    pipeline: Pipeline

    def run(self, limit_s: float = 2.0) -> None:
        """Run until every polled offset is committed (or, as a safety bound, ``limit_s``)."""
        total = len(self.source.pending)
        deadline = time.monotonic() + limit_s
        self.pipeline.run(
            lambda _: len(self.source.committed) >= total or time.monotonic() > deadline
        )


def rig(
    records: Sequence[Record],
    depth: int,
    head: WholeFrameHead | None = None,
    log: list[Event] | None = None,
    crops=None,
) -> Rig:
    log = [] if log is None else log
    head = head or WholeFrameHead("toy")
    source, sink, publisher = MemorySource(records, log), MemorySink(log), FakePublisher(log)
    pipeline = Pipeline(
        source,  # type: ignore[arg-type]
        FramePreparer(IngestSettings(), {"toy": head}),
        TaskRouter([head]),
        [sink],
        DeadLetterQueue(publisher, "frames.dlq"),  # type: ignore[arg-type]
        max_frames_per_batch=4,
        max_wait_ms=0,
        depth=depth,
        crops=crops,
    )
    return Rig(log, source, sink, publisher, head, pipeline)


def first(log: list[Event], kind: str, offset: int) -> int:
    """The index of the first ``kind`` event that covers ``offset``."""
    return next(i for i, (k, offsets) in enumerate(log) if k == kind and offset in offsets)


def assert_durable_before_commit(log: list[Event], dead: Sequence[int] = ()) -> None:
    """Each committed offset was flushed by the sink (or, if in ``dead``, by the DLQ) first."""
    for i, (kind, offsets) in enumerate(log):
        for offset in offsets if kind == "commit" else ():
            where = "dlq" if offset in dead else "flush"
            assert first(log, where, offset) < i, f"offset {offset} committed before its {where}"


DEPTHS = pytest.mark.parametrize("depth", [0, 2])


@DEPTHS
def test_offsets_are_committed_only_after_the_sink_flushed_their_records(depth: int) -> None:
    r = rig([good(i) for i in range(10)], depth)
    r.run()
    assert_durable_before_commit(r.log)
    assert r.sink.offsets == list(range(10))  # a list: a duplicate would show
    assert r.source.committed == list(range(10))
    assert r.source.commits == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert r.publisher.sent == []
    assert r.pipeline.stats.frames == 10


@DEPTHS
def test_a_failed_flush_stops_the_pipeline_without_committing_its_batch(depth: int) -> None:
    r = rig([good(i) for i in range(12)], depth)
    r.sink.fail_at_flush = 2
    with pytest.raises(StorageError, match="disk full"):
        r.run()
    assert r.source.commits == [(0, 1, 2, 3)]  # the first batch only
    assert r.sink.offsets == [0, 1, 2, 3]


@DEPTHS
def test_broken_frames_go_to_the_dlq_and_are_committed_after_it_acked(depth: int) -> None:
    kinds = {1: "empty", 3: "garbage", 6: "unserved"}
    records = [broken(i, kinds[i]) if i in kinds else good(i) for i in range(8)]
    r = rig(records, depth)
    r.run()
    letters = {m.offset: m for m in r.publisher.sent}
    assert [m.offset for m in r.publisher.sent] == [1, 3, 6]
    stages = {o: m.headers["error-stage"] for o, m in letters.items()}
    assert stages == {1: b"headers", 3: b"decode", 6: b"route"}
    assert b"empty" in letters[1].headers["error"]
    assert b"unserved" in letters[6].headers["error"]
    for offset, letter in letters.items():
        assert letter.topic == "frames.dlq"
        assert letter.value == records[offset].value  # the original message
        assert letter.headers["source"] == f"{TOPIC}/0/{offset}".encode()
        assert letter.headers["content-type"] == b"image/png"  # its own headers kept
    assert r.sink.offsets == [0, 2, 4, 5, 7]
    assert r.source.committed == list(range(8))
    assert_durable_before_commit(r.log, dead=[1, 3, 6])
    assert r.pipeline.stats.dead_letters == 3


@DEPTHS
def test_a_failing_backend_dead_letters_its_whole_batch_with_the_reason(depth: int) -> None:
    r = rig([good(i) for i in range(12)], depth, FailingSecondCall("toy"))
    r.run()
    assert [m.offset for m in r.publisher.sent] == [4, 5, 6, 7]
    for letter in r.publisher.sent:
        assert letter.headers["error-stage"] == b"infer"
        assert letter.headers["error"] == b"[infer] device lost"
    assert r.sink.offsets == [0, 1, 2, 3, 8, 9, 10, 11]  # the batches beside it are stored
    assert r.source.committed == list(range(12))
    assert_durable_before_commit(r.log, dead=[4, 5, 6, 7])
    assert r.pipeline.stats.dead_letters_by_stage == {"infer": 4}


@DEPTHS
def test_a_saturated_sink_pauses_consumption_and_nothing_is_dropped(depth: int) -> None:
    r = rig([good(i) for i in range(16)], depth)
    r.sink.saturate_at_flush = 1
    r.run()
    full = r.log.index(("full", ()))
    opened = r.log.index(("open", ()))
    assert full < opened
    polled = [e for e in r.log[full:opened] if e[0] == "poll"]
    assert polled == [], "records were polled while the sink was saturated"
    assert any(kind == "poll" for kind, _ in r.log[opened:]), "consumption never resumed"
    assert r.source.pauses >= 1 and r.source.polls_while_paused == 5  # one per held turn
    assert r.source.resumes >= 1 and not r.source.paused and not r.pipeline.paused
    assert r.sink.offsets == list(range(16))
    assert r.source.committed == list(range(16))
    assert_durable_before_commit(r.log)


def test_batches_in_flight_are_stored_and_committed_in_poll_order() -> None:
    r = rig([good(i) for i in range(16)], 2, SlowFirstCalls("toy"))
    r.run()
    polls = [offsets for kind, offsets in r.log if kind == "poll"]
    flushes = [offsets for kind, offsets in r.log if kind == "flush"]
    assert polls == flushes == r.source.commits
    assert r.sink.offsets == list(range(16))
    # the batches overlapped: the second was polled before the first was stored
    assert first(r.log, "poll", 4) < first(r.log, "flush", 0)
    assert_durable_before_commit(r.log)


def test_records_carry_the_model_release_and_the_head_fields() -> None:
    r = rig([good(i) for i in range(6)], 0)
    r.run()
    release = r.head.card.release
    assert re.fullmatch(r"[^+]+\+[0-9a-f]{8}", release)
    assert len(r.sink.durable) == 6
    for record in r.sink.durable:
        offset = record.ref.offset
        assert record.model_version == release
        assert record.model == r.head.card.name
        assert record.fields == (("total", 4.0 * (offset + 1)),)  # its own image's sum
        assert record.uid == f"cam-1@{BASE_NS + offset}"
