"""Issue 4's outage test: the real VictoriaMetrics is stopped for 60 s in the middle of a
5,000-frame stream on the real Tansu broker. Nothing may be lost or counted twice, and
consumption must go on during the outage (the outbox holds the lines)."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time

import pytest

from seawatch.daemon import build_daemon
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from seawatch.storage.influx_outbox import OutboxSink
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

N_FRAMES = 5000
OUTAGE_S = 60.0
STREAM_S = 70.0  # the stream is published over this long, so the outage is mid-stream


def _publish_paced(settings, messages, seconds: float) -> None:
    publisher = Publisher(settings.kafka.bootstrap_servers)
    try:
        slices = 50
        size = -(-len(messages) // slices)
        started = time.monotonic()
        for i in range(slices):
            chunk = messages[i * size : (i + 1) * size]
            publish_messages(publisher, settings.kafka.topics[0], chunk)
            time.sleep(max(0.0, started + (i + 1) * seconds / slices - time.monotonic()))
    finally:
        publisher.close()


def test_a_60_s_database_outage_mid_stream_loses_and_doubles_nothing(
    tmp_path, broker, unique, model_dir, victoria
):
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        storage__influx__url=victoria.url,
        storage__influx__timeout_ms=2000,
        storage__influx__retry_backoff_s=0.2,
        storage__outbox__max_backoff_s=2.0,
        storage__outbox__shutdown_drain_s=120.0,
    )
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    start_ns = time.time_ns() - N_FRAMES * 10**6
    messages = list(synthetic_stream(N_FRAMES, seed=11, full_share=0.0, start_ns=start_ns))

    daemon = build_daemon(settings)
    outbox = next(s for s in daemon.sinks if isinstance(s, OutboxSink))
    stats = daemon.pipeline.stats
    samples: list[tuple[float, int]] = []  # (monotonic time, frames stored and committed)
    outage: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), stats.frames))
            if "down" not in outage and stats.frames >= 800:
                victoria.stop()
                outage["down"] = time.monotonic()
                outage["frames_at_down"] = stats.frames
            elif (
                "down" in outage
                and "up" not in outage
                and time.monotonic() - outage["down"] >= OUTAGE_S
            ):
                outage["backlog_at_up"] = outbox.backlog
                outage["frames_at_up"] = stats.frames
                victoria.start()
                outage["up"] = time.monotonic()
            done.wait(0.25)

    publisher = threading.Thread(target=_publish_paced, args=(settings, messages, STREAM_S))
    watcher = threading.Thread(target=watch)
    publisher.start()
    watcher.start()
    try:
        daemon.run(lambda s: s.processed >= N_FRAMES)
        while "up" not in outage:  # the stream may end before the outage does
            time.sleep(0.5)
    finally:
        publisher.join()
        done.set()
        watcher.join()
        daemon.close()  # drains the outbox (up to shutdown_drain_s)

    assert stats.frames == N_FRAMES
    assert outbox.drainer.failed_attempts > 0  # the outage was real
    # Consumption went on during the outage: frames were stored and committed throughout.
    during = [(t, f) for t, f in samples if outage["down"] <= t <= outage["up"]]
    consumed_during = outage["frames_at_up"] - outage["frames_at_down"]
    assert consumed_during >= 0.4 * N_FRAMES * OUTAGE_S / STREAM_S, outage
    moved = [t for (t, f), (_, before) in zip(during[1:], during, strict=False) if f > before]
    stall = max((b - a for a, b in itertools.pairwise(moved)), default=0.0)
    assert stall < 10.0  # the publisher sends a slice every 1.4 s; nothing waits on the database
    assert outage["backlog_at_up"] > 0
    print(
        f"outage {OUTAGE_S:.0f} s: {consumed_during} frames consumed during it, "
        f"backlog {outage['backlog_at_up']} lines at recovery, longest stall "
        f"{stall:.1f} s"
    )

    with sqlite3.connect(settings.storage.local.path) as db:
        local_frames = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        local_objects = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        local_taxa = dict(db.execute("SELECT taxon, COUNT(*) FROM objects GROUP BY taxon"))
    assert local_frames == N_FRAMES

    frames = victoria.export('{__name__="frames_objects"}')
    timestamps = [(tuple(sorted(s["metric"].items())), t) for s in frames for t in s["timestamps"]]
    assert len(timestamps) == len(set(timestamps)) == N_FRAMES  # every frame once, none twice
    assert sum(sum(s["values"]) for s in frames) == local_objects
    by_taxon: dict[str, float] = {}
    for series in victoria.export('{__name__="plankton_count"}'):
        taxon = series["metric"]["taxon"]
        by_taxon[taxon] = by_taxon.get(taxon, 0) + sum(series["values"])
    assert by_taxon == local_taxa
