"""Pipeline statistics stay bounded however long the daemon runs."""

from __future__ import annotations

import time

import pytest

from seawatch import stats as stats_module
from seawatch.stats import PipelineStats


def _store(stats: PipelineStats, *ages_ms: float) -> None:
    now_ms = time.time() * 1000
    stats.stored([], time.perf_counter(), [now_ms - age for age in ages_ms])


def test_latencies_are_kept_for_a_bounded_window_and_read_since_a_mark(monkeypatch):
    monkeypatch.setattr(stats_module, "LATENCY_WINDOW", 5)
    stats = PipelineStats()
    _store(stats, 100, 100, 100)
    first, mark = stats.latencies_since(0)
    assert len(first) == 3 and mark == 3
    assert min(first) >= 100
    _store(stats, 1000, 1000, 1000, 1000)
    since, mark = stats.latencies_since(mark)
    assert len(since) == 4 and min(since) >= 1000 and mark == 7
    assert len(stats.latencies_since(0)[0]) == 5  # the window, not all seven
    p50, p99 = stats.latency_percentiles(50, 99)
    assert p50 == pytest.approx(1000, abs=50) and p99 == pytest.approx(1000, abs=50)


def test_latency_is_kept_per_task_too():
    stats = PipelineStats()
    now_ms = time.time() * 1000
    stats.stored([], time.perf_counter(), [now_ms - 100, now_ms - 5000], ["plankton", "otolith"])
    per_task = stats.task_latency_percentiles(50)
    assert list(per_task) == ["otolith", "plankton"]
    assert per_task["otolith"][0] == pytest.approx(5000, abs=50)
    assert per_task["plankton"][0] == pytest.approx(100, abs=50)
    stats.rejected("headers", "lat")
    stats.rejected("infer")
    assert stats.dead_letters_by_reason == {"headers: lat": 1, "infer": 1}
