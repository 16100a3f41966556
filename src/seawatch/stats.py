"""Running statistics of the pipeline: counts, throughput and latency percentiles.

Latency here is end to end: from the broker's timestamp of a message (its publish time) to
the moment its record was durable and its offset committed; kept overall and per task.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from seawatch.contracts.records import FrameRecord

LATENCY_WINDOW = 100_000  # frames whose latencies are kept for percentiles


@dataclass
class PipelineStats:
    """Thread-safe counters updated by the pipeline's stages."""

    started_at: float = field(default_factory=time.perf_counter)
    frames: int = 0
    objects: int = 0
    dead_letters: int = 0
    dead_letters_by_stage: Counter = field(default_factory=Counter)
    dead_letters_by_reason: Counter = field(default_factory=Counter)  # "stage: field"
    taxa: Counter = field(default_factory=Counter)
    infer_ms_total: float = 0.0
    first_stored_at: float | None = None
    last_stored_at: float | None = None
    stage_seconds: Counter = field(default_factory=Counter)
    latencies_seen: int = 0
    keep_alive_polls: int = 0  # polls without fetching while a slow batch was awaited
    # the most recent latencies only: a daemon runs for months, a list of every frame's would
    # grow without bound (64 bytes a frame)
    _latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    _service_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    _task_latencies_ms: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stored(
        self,
        records: list[FrameRecord],
        polled_at: float,
        broker_ts_ms: list[int],
        tasks: list[str] | None = None,
    ) -> None:
        """Count a batch whose records are durable and whose offsets are committed
        (``tasks``: each message's task, in the order of ``broker_ts_ms``)."""
        now_ms = time.time() * 1000
        with self._lock:
            now = time.perf_counter()
            self.first_stored_at = self.first_stored_at or polled_at
            self.last_stored_at = now
            self.frames += len(records)
            for record in records:
                self.objects += len(record.objects)
                self.taxa.update(obj.taxon for obj in record.objects)
            latencies = [max(0.0, now_ms - ts) for ts in broker_ts_ms]
            self._latencies_ms.extend(latencies)
            for task, latency in zip(tasks or (), latencies, strict=False):
                kept = self._task_latencies_ms.get(task)
                if kept is None:
                    kept = self._task_latencies_ms[task] = deque(maxlen=LATENCY_WINDOW)
                kept.append(latency)
            self.latencies_seen += len(broker_ts_ms)
            self._service_ms.extend([(now - polled_at) * 1000] * len(records))

    def inferred(self, infer_ms: float) -> None:
        """Add the time the model took on one batch."""
        with self._lock:
            self.infer_ms_total += infer_ms

    def rejected(self, stage: str, field_name: str | None = None) -> None:
        """Count a dead letter, by stage and by ``stage: field`` (what was wrong)."""
        with self._lock:
            self.dead_letters += 1
            self.dead_letters_by_stage[stage] += 1
            self.dead_letters_by_reason[f"{stage}: {field_name}" if field_name else stage] += 1

    def timed(self, stage: str, seconds: float) -> None:
        """Add wall time spent in a stage (poll, prepare, infer, store, commit)."""
        with self._lock:
            self.stage_seconds[stage] += seconds

    @property
    def processed(self) -> int:
        """Messages fully handled: stored frames plus dead letters."""
        return self.frames + self.dead_letters

    def busy_seconds(self) -> float:
        """Seconds from the first poll that returned data to the last durable batch."""
        if self.first_stored_at is None or self.last_stored_at is None:
            return 0.0
        return max(1e-9, self.last_stored_at - self.first_stored_at)

    def latencies_since(self, seen_before: int) -> tuple[list[float], int]:
        """Latencies (ms) of the frames stored since ``latencies_seen`` was
        ``seen_before`` (as far back as the window reaches), and ``latencies_seen`` now."""
        with self._lock:
            new = min(self.latencies_seen - seen_before, len(self._latencies_ms))
            # the tail only, walked from the end: O(new), not a copy of the whole window
            recent = list(islice(reversed(self._latencies_ms), new))[::-1]
            return recent, self.latencies_seen

    def latency_percentiles(self, *qs: float) -> list[float]:
        """Percentiles (0..100) of end-to-end latency (broker -> stored) in ms, over the
        last :data:`LATENCY_WINDOW` frames."""
        with self._lock:
            return _percentiles(self._latencies_ms, qs)

    def task_latency_percentiles(self, *qs: float) -> dict[str, list[float]]:
        """Per task, percentiles (0..100) of end-to-end latency in ms, over each task's last
        :data:`LATENCY_WINDOW` frames."""
        with self._lock:
            return {t: _percentiles(v, qs) for t, v in sorted(self._task_latencies_ms.items())}

    def service_percentiles(self, *qs: float) -> list[float]:
        """Percentiles (0..100) of the time in the daemon (polled -> stored) in ms, over
        the last :data:`LATENCY_WINDOW` frames."""
        with self._lock:
            return _percentiles(self._service_ms, qs)


def _percentiles(values: Sequence[float], qs: tuple[float, ...]) -> list[float]:
    if not values:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(np.asarray(values), qs)]
