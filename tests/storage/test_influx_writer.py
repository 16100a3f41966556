"""The InfluxDB writer's retries, against a real VictoriaMetrics that is down, then up."""

from __future__ import annotations

import time

import pytest

from seawatch.config import InfluxSettings
from seawatch.contracts.errors import StorageError
from seawatch.ingest.broker import free_port
from seawatch.storage.influx_writer import InfluxWriter
from tests.storage.factories import make_record


def test_unreachable_server_is_retried_with_backoff_then_a_storage_error():
    delays: list[float] = []
    settings = InfluxSettings(
        url=f"http://127.0.0.1:{free_port()}", max_retries=3, retry_backoff_s=0.1, timeout_ms=500
    )
    writer = InfluxWriter(settings, sleep=delays.append)
    writer.add([make_record()])
    with pytest.raises(StorageError, match="after 4 attempt"):
        writer.flush()
    assert len(delays) == 3
    # exponential backoff with jitter in [0.5, 1.5) of the nominal delay
    for attempt, delay in enumerate(delays):
        nominal = 0.1 * 2**attempt
        assert 0.5 * nominal <= delay < 1.5 * nominal
    writer.close()  # nothing pending: closes cleanly


@pytest.mark.integration
def test_a_flush_after_recovery_delivers(victoria):
    writer = InfluxWriter(InfluxSettings(url=victoria.url, batch_size=2))
    now = time.time_ns()  # VictoriaMetrics drops samples older than its retention
    writer.add([make_record(now - i * 1_000_000) for i in range(5)])
    writer.close()  # close flushes, in batches of 2 lines
    series = victoria.export('{__name__="frames_objects"}')
    assert sum(len(s["values"]) for s in series) == 5
