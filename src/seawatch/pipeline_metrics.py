"""The ``pipeline`` measurement: the daemon's own health, one point per interval.

Fields per interval: frames/s, objects/s, end-to-end latency p50/p99 (broker to durable),
dead letters, consumer lag (messages behind the end of the assigned partitions) and the
outbox backlog (lines not yet acknowledged by InfluxDB). Tags: ``worker`` (the consumer
group and host) and ``stage`` (``all``: the whole pipeline).
"""

from __future__ import annotations

import socket
import time

import numpy as np

from seawatch.contracts.points import line
from seawatch.stats import PipelineStats


class PipelineMetrics:
    """Turns the running :class:`PipelineStats` into one ``pipeline`` point per interval."""

    def __init__(
        self, stats: PipelineStats, *, group_id: str, interval_s: float, worker: int | None = None
    ) -> None:
        self.stats = stats
        self.worker = f"{group_id}@{socket.gethostname()}"
        if worker is not None:  # one of `run --workers N`: a bounded tag (N values)
            self.worker += f"/{worker}"
        self.interval_s = interval_s
        self._last_at = time.monotonic()
        self._last = (0, 0, 0, 0)  # frames, objects, dead letters, latencies seen

    def due(self) -> bool:
        """Whether an interval has passed since the last point."""
        return time.monotonic() - self._last_at >= self.interval_s

    def point(self, *, lag: int | None, backlog: int | None) -> str:
        """The point for the interval since the last call (stamped with wall time)."""
        now = time.monotonic()
        seconds = max(1e-9, now - self._last_at)
        s = self.stats
        with s._lock:
            frames, objects, dead = s.frames, s.objects, s.dead_letters
        latencies, seen = s.latencies_since(self._last[3])
        p50, p99 = (None, None)
        if latencies:
            p50, p99 = (round(float(v), 3) for v in np.percentile(latencies, [50, 99]))
        text = line(
            "pipeline",
            {"worker": self.worker, "stage": "all"},
            {
                "frames_per_s": round((frames - self._last[0]) / seconds, 3),
                "objects_per_s": round((objects - self._last[1]) / seconds, 3),
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
                "errors": dead - self._last[2],
                "lag": lag,
                "outbox_backlog": backlog,
            },
            time.time_ns(),
        )
        self._last_at, self._last = now, (frames, objects, dead, seen)
        assert text is not None  # frames_per_s is always set
        return text


__all__ = ["PipelineMetrics"]
