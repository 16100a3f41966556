"""Helpers for integration tests: settings pointing at the test servers, publishing, reading."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from seawatch.config import Settings, load_settings
from seawatch.daemon import build_daemon
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from seawatch.stats import PipelineStats


def settings_for(
    tmp_path: Path, broker: EmbeddedBroker, unique: str, model_dir: Path, **overrides
) -> Settings:
    """Settings for one test: its own topics, group and store."""
    values = {
        "kafka__bootstrap_servers": broker.bootstrap_servers,
        "kafka__topics": [f"t{unique}.frames.plankton"],
        "kafka__dlq_topic": f"t{unique}.frames.dlq",
        "kafka__group_id": f"g{unique}",
        "kafka__max_poll_interval_ms": 6000,
        "kafka__session_timeout_ms": 6000,
        "kafka__heartbeat_interval_ms": 500,
        "kafka__partitions": 3,
        "tasks__plankton__model_dir": str(model_dir),
        "storage__local__path": str(tmp_path / "store.db"),
    }
    values.update(overrides)
    return load_settings(**values)


def publish_synthetic(
    settings: Settings, n: int, *, seed: int = 0, start_ns: int | None = None, **kwargs
) -> int:
    """Publish ``n`` synthetic messages to the settings' first topic; return broken count."""
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    start_ns = time.time_ns() - n * 10**6 if start_ns is None else start_ns
    messages = list(synthetic_stream(n, seed=seed, start_ns=start_ns, **kwargs))
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        publish_messages(publisher, kafka.topics[0], messages)
    finally:
        publisher.close()
    return sum(m.broken is not None for m in messages)


def run_until(settings: Settings, total: int) -> PipelineStats:
    """Build the daemon, run it until ``total`` messages are handled, close it."""
    daemon = build_daemon(settings)
    try:
        return daemon.run(lambda s: s.processed >= total)
    finally:
        daemon.close()


def stored_uids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT uid FROM frames")]


def read_topic(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0, settle_s: float = 0.0
) -> list:
    """Read ``expected`` messages from the start of ``topic`` (no group), then whatever else
    comes within ``settle_s`` (so a duplicate would show)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=1000,
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        if settle_s:
            for batch in consumer.poll(timeout_ms=int(settle_s * 1000)).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records
