"""Keyed topics read outside the group, on the real broker (Tansu keeps every version: no
compaction), including its end offset that lags behind a multi-record batch."""

from __future__ import annotations

import pytest

from seawatch.config import KafkaSettings
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.keyed_topics import FIRST_STEP, KeyedTopics

pytestmark = pytest.mark.integration


@pytest.fixture
def keyed(broker):
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    publisher = Publisher(kafka)
    topics = KeyedTopics(kafka, publisher)
    yield topics
    topics.close()
    publisher.close()


def test_latest_finds_each_keys_newest_value_however_far_back(keyed, unique):
    topic = f"t{unique}.state"
    ensure_topics(keyed.kafka, [topic], 1, {"cleanup.policy": "compact"})
    keyed.put(topic, {"far": b"old"})
    keyed.put(topic, {"far": b"far", "gone": b"x"})
    keyed.publisher.send(topic, None, b"gone", [])  # a tombstone
    hot = 4 * FIRST_STEP  # several steps back to reach "far"
    for i in range(hot):  # one flush: multi-record batches, whose end Tansu under-reports
        keyed.publisher.send(topic, str(i).encode(), b"hot", [])
    keyed.publisher.flush()
    found = keyed.latest(topic, ["far", "hot", "gone", "never"])
    assert found == {"far": b"far", "hot": str(hot - 1).encode()}


def test_keys_since_reads_every_partition_from_the_given_offsets(keyed, unique):
    topic = f"t{unique}.alerts"
    ensure_topics(keyed.kafka, [topic], 2)
    futures = [keyed.publisher.send(topic, b"{}", f"id{i}".encode(), []) for i in range(40)]
    keyed.publisher.flush()
    ends = keyed.ends(topic)
    assert set(ends) == {0, 1}
    for i in range(40, 50):
        keyed.publisher.send(topic, b"{}", f"id{i}".encode(), [])
    keyed.publisher.flush()
    everything = keyed.keys_since(topic, {})
    assert sorted(everything) == sorted(f"id{i}" for i in range(50))
    after = {0: 0, 1: 0}
    for future in futures:  # from after the first 40: only the last ten
        meta = future.value
        after[meta.partition] = max(after[meta.partition], meta.offset + 1)
    assert sorted(keyed.keys_since(topic, after)) == sorted(f"id{i}" for i in range(40, 50))
