"""A frame topic deleted and made again under the same name: the consumer must read the new
topic from its beginning, not from where it had reached in the old one."""

from __future__ import annotations

import time
import uuid

import pytest

from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from seawatch.ingest.recreated_topics import TopicIdWatch
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration


def _publish(bootstrap: str, topic: str, n: int, tag: str) -> None:
    publisher = Publisher(bootstrap)
    try:
        for i in range(n):
            publisher.send(topic, f"{tag}-{i}".encode(), None, [])
        publisher.flush()
    finally:
        publisher.close()


def _drain(source: FrameSource, want: int, timeout_s: float = 60) -> list:
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < want and time.monotonic() < deadline:
        records.extend(source.poll_batch(100, 200))
    return records


def test_a_recreated_topic_is_read_from_its_beginning(tmp_path, broker, unique, model_dir):
    from kafka.admin import KafkaAdminClient

    settings = settings_for(
        tmp_path, broker, unique, model_dir, kafka__partitions=1, kafka__metadata_max_age_ms=1000
    )
    kafka = settings.kafka
    topic = kafka.topics[0]
    ensure_topics(kafka, [topic], 1)
    _publish(broker.bootstrap_servers, topic, 10, "old")
    source = FrameSource(kafka)
    try:
        old = _drain(source, 10)
        assert len(old) == 10
        source.commit(old)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
        ensure_topics(kafka, [topic], 1)
        # More than the old topic held: the old position (10) lies inside the new log, so
        # without the rewind the first 10 new messages are skipped without a word.
        _publish(broker.bootstrap_servers, topic, 25, "new")
        new = _drain(source, 25)
    finally:
        source.close()
    # The new id shows at the next metadata refresh (kafka.metadata_max_age_ms); records read
    # from the old position before it are read again after the rewind, never lost.
    assert {r.value.decode() for r in new} == {f"new-{i}" for i in range(25)}


def test_the_watch_reports_a_changed_id_once():
    a, b = uuid.uuid4(), uuid.uuid4()
    watch = TopicIdWatch(["frames", "other"])
    assert watch.changed({"frames": a}) == []
    assert watch.changed({"frames": None, "other": uuid.UUID(int=0)}) == []
    assert watch.changed({"frames": a}) == []
    assert watch.changed({"frames": b}) == ["frames"]
    assert watch.changed({"frames": b}) == []
