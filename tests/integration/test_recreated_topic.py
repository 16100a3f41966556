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


def _started(tmp_path, broker, unique, model_dir):
    """A one-partition frame topic holding old-0..9, and a source on it (metadata each 1 s)."""
    settings = settings_for(
        tmp_path, broker, unique, model_dir, kafka__partitions=1, kafka__metadata_max_age_ms=1000
    )
    kafka = settings.kafka
    topic = kafka.topics[0]
    ensure_topics(kafka, [topic], 1)
    _publish(broker.bootstrap_servers, topic, 10, "old")
    return kafka, topic, FrameSource(kafka)


def _recreate(broker, kafka, topic: str, n_new: int) -> None:
    """Delete ``topic``, make it again and publish new-0..n_new-1 to it."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()
    ensure_topics(kafka, [topic], 1)
    _publish(broker.bootstrap_servers, topic, n_new, "new")


def test_a_recreated_topic_is_read_from_its_beginning(tmp_path, broker, unique, model_dir):
    kafka, topic, source = _started(tmp_path, broker, unique, model_dir)
    try:
        old = _drain(source, 10)
        assert len(old) == 10
        source.commit(old)
        # More than the old topic held: the old position (10) lies inside the new log, so
        # without the rewind the first 10 new messages are skipped without a word.
        _recreate(broker, kafka, topic, 25)
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


def test_records_of_a_topic_recreated_during_the_poll_are_kept_once(
    tmp_path, broker, unique, model_dir
):
    """The topic is made again *inside* one ``poll`` (as when a join-long poll spans a broker
    restart): what that poll brought of the new log must not also be read after the rewind."""
    kafka, topic, source = _started(tmp_path, broker, unique, model_dir)
    consumer = source._consumer  # the real consumer; only the moment of the recreation is set
    real_poll = consumer.poll
    armed = {"on": False}
    seen: dict = {}

    def poll_across_a_recreation(timeout_ms: int = 0, max_records: int | None = None):
        if not armed["on"]:
            return real_poll(timeout_ms=timeout_ms, max_records=max_records)
        armed["on"] = False
        old_id = consumer._client.cluster.topic_id(topic)
        # More than the old log held, so the old position (10) lies inside the new log and the
        # poll brings new-10.. before anything rewinds.
        _recreate(broker, kafka, topic, 15)
        # Return only once this one poll holds new records *and* the new topic id is known:
        # the check before the poll saw the old id, so only the check after it can notice.
        brought: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for tp, batch in real_poll(timeout_ms=200).items():
                brought.setdefault(tp, []).extend(batch)
            if brought and consumer._client.cluster.topic_id(topic) not in (None, old_id):
                break
        seen["brought"] = sum(len(batch) for batch in brought.values())
        seen["new_id"] = consumer._client.cluster.topic_id(topic) not in (None, old_id)
        return brought

    consumer.poll = poll_across_a_recreation
    try:
        old = _drain(source, 10)
        assert [r.value.decode() for r in old] == [f"old-{i}" for i in range(10)]
        source.commit(old)
        armed["on"] = True
        new = _drain(source, 15)
        new += _drain(source, 10, timeout_s=3)  # anything read twice would come now
    finally:
        source.close()
    assert seen["brought"] > 0 and seen["new_id"], f"no records across the recreation: {seen}"
    assert sorted(r.value.decode() for r in new) == sorted(f"new-{i}" for i in range(15))
