"""The frame source in a real consumer group: its listeners hear revokes and assignments, and
it does not commit the offsets of a partition that was revoked while its records were in
flight (the broker would take them from any member of the generation)."""

from __future__ import annotations

import threading
import time

import pytest

from seawatch.contracts.partitions import Partition
from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, set[Partition]]] = []

    def partitions_revoked(self, partitions) -> None:
        self.events.append(("revoked", set(partitions)))

    def partitions_assigned(self, partitions) -> None:
        self.events.append(("assigned", set(partitions)))

    def partitions_rewound(self, partitions) -> None:
        self.events.append(("rewound", set(partitions)))


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: reader.committed(TopicPartition(topic, p)) for p in (0, 1)}
    finally:
        reader.close(autocommit=False)


def test_a_member_joining_moves_a_partition_and_its_records_in_flight_are_not_committed(
    tmp_path, broker, unique, model_dir
):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=2)
    kafka, topic = settings.kafka, settings.kafka.topics[0]
    ensure_topics(kafka, [topic], 2)
    publisher = Publisher(kafka)
    for i in range(20):
        publisher.send(topic, b"frame", f"instrument-{i % 6}".encode(), [])
    publisher.flush()
    publisher.close()

    heard = Heard()
    first = FrameSource(kafka)
    first.listen(heard)
    in_flight: list = []
    deadline = time.monotonic() + 60
    while len(in_flight) < 20 and time.monotonic() < deadline:
        in_flight += first.poll_batch(20, 100)
    assert {r.partition for r in in_flight} == {0, 1}
    assert heard.events[-1] == ("assigned", {Partition(topic, 0), Partition(topic, 1)})

    second = FrameSource(kafka)
    stop = threading.Event()

    def keep_polling(source: FrameSource) -> None:  # each member polls on its own thread
        while not stop.is_set():
            source.poll_batch(1, 0, idle_ms=100)

    threads = [threading.Thread(target=keep_polling, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (len(first.assignment()) == 1 and len(second.assignment()) == 1):
            assert time.monotonic() < deadline, "the group never shared its two partitions"
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    [kept] = [tp.partition for tp in first.assignment()]
    assert ("revoked", {Partition(topic, 0), Partition(topic, 1)}) in heard.events
    assert heard.events[-1] == ("assigned", {Partition(topic, kept)})

    first.commit(in_flight)  # polled before the rebalance, both partitions
    committed = _committed(broker.bootstrap_servers, kafka.group_id, topic)
    highest = max(r.offset for r in in_flight if r.partition == kept)
    assert committed[kept] == highest + 1
    assert committed[1 - kept] is None  # its new owner reads it from the start
    for source in (first, second):
        source.close()
