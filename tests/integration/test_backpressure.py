"""A full outbox pauses consumption (never drops); a recovered database resumes it."""

from __future__ import annotations

import threading
import time

import pytest

from seawatch.daemon import build_daemon
from seawatch.storage.influx_outbox import OutboxSink
from tests.integration.helpers import publish_synthetic, settings_for
from tests.servers import VictoriaMetrics

pytestmark = pytest.mark.integration


def test_a_full_outbox_pauses_consumption_until_the_database_is_back(
    tmp_path, broker, unique, model_dir
):
    server = VictoriaMetrics(tmp_path / "vm")  # its port is known; it starts later
    max_lines = 120
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        storage__influx__url=server.url,
        storage__influx__timeout_ms=1000,
        storage__influx__retry_backoff_s=0.1,
        storage__outbox__max_lines=max_lines,
        storage__outbox__max_backoff_s=0.5,
        storage__outbox__shutdown_drain_s=60.0,
        kafka__max_poll_records=10,
    )
    n = 300
    publish_synthetic(settings, n, seed=5, full_share=0.0)
    daemon = build_daemon(settings)
    outbox = next(s for s in daemon.sinks if isinstance(s, OutboxSink))
    seen: dict[str, float] = {}

    def recover_later() -> None:
        time.sleep(8.0)  # the outbox fills within a second or two; then consumption waits
        seen["frames_while_down"] = daemon.pipeline.stats.frames
        seen["backlog_while_down"] = outbox.backlog
        seen["paused"] = daemon.pipeline._paused
        server.start()

    thread = threading.Thread(target=recover_later)
    thread.start()
    try:
        stats = daemon.run(lambda s: s.processed >= n)
    finally:
        thread.join()
        daemon.close()
    try:
        assert seen["paused"] is True
        assert seen["frames_while_down"] < n
        # bounded: the outbox limit plus the batches already in flight when it filled
        assert max_lines <= seen["backlog_while_down"] < max_lines + 9 * 10 * 4
        assert stats.frames == n
        assert stats.stage_seconds["backpressure"] > 0
        frames = server.export('{__name__="frames_objects"}')
        assert sum(len(s["values"]) for s in frames) == n
    finally:
        server.stop()
