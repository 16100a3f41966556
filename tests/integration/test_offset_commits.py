"""Offset commits on the real Tansu broker: per partition, the offset after the highest."""

from __future__ import annotations

import time

import pytest

from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict:
    """The group's committed offset of each partition, read by a consumer that joins nothing."""
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {(topic, p): reader.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        reader.close(autocommit=False)


def test_each_batch_commits_the_offset_after_its_highest_per_partition(
    tmp_path, broker, unique, model_dir
):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=2)
    kafka = settings.kafka
    topic = kafka.topics[0]
    ensure_topics(kafka, [topic], 2)
    publisher = Publisher(broker.bootstrap_servers)
    try:
        for i in range(40):
            publisher.send(topic, f"m{i}".encode(), f"k{i % 5}".encode(), [])
        publisher.flush()
    finally:
        publisher.close()
    source = FrameSource(kafka)
    try:
        records: list = []
        deadline = time.monotonic() + 60
        while len(records) < 40 and time.monotonic() < deadline:
            batch = source.poll_batch(7, 50)
            source.commit(batch)  # many small batches over two partitions
            records.extend(batch)
        assert len(records) == 40
        expected: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            expected[key] = max(expected.get(key, 0), r.offset + 1)
        assert _committed(broker.bootstrap_servers, kafka.group_id, topic, 2) == expected
        assert source.commit_failures == 0
        source.commit([])  # nothing to commit: a no-op
        assert _committed(broker.bootstrap_servers, kafka.group_id, topic, 2) == expected
    finally:
        source.close()
