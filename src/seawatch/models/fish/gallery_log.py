"""The shared fish gallery's Kafka topic: read it whole, tail it, append to it.

The topic (``<kafka.group_id>.fish-gallery`` by default) is created like the daemon's other
topics, with **one partition** and ``cleanup.policy=compact``: the gallery is small (a record
per enrolment, per kept view, per merge), one partition gives every reader the order the
records were written in (a view after the enrolment it extends, a merge after both twins),
and compaction keeps the latest record of each key, which is all a reader needs
(:mod:`seawatch.models.fish.gallery_records` explains the keys). Readers are not a consumer
group: each worker assigns itself every partition, reads from the beginning to the end
offsets at start and polls without blocking between batches, so every worker on every host
sees every record. Writes go through a producer with ``acks=all`` and are flushed before
the batch that made them is committed. A broker that loses the topic (Tansu on memory,
restarted) loses the shared records with it; each worker's gallery keeps them in memory and
in the file it exports on stop, which the next start reads before the topic.
"""

from __future__ import annotations

import time

from seawatch.config import KafkaSettings
from seawatch.contracts.errors import BrokerError, ConfigError
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.kafka_security import client_kwargs, connect_errors

TOPIC_CONFIGS = {"cleanup.policy": "compact"}
READ_TIMEOUT_S = 60.0  # reading the whole topic at start; a gallery is megabytes at most

Record = tuple[str, bytes | None]  # key, value (None: a tombstone)


class GalleryLog:
    """A reader of every partition of the gallery topic (no group) and its writer."""

    def __init__(self, kafka: KafkaSettings, topic: str, *, create: bool) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.topic = topic
        if create:
            ensure_topics(kafka, [topic], 1, TOPIC_CONFIGS)
        with connect_errors(kafka, "fish gallery reader"):
            self._consumer = KafkaConsumer(
                **client_kwargs(kafka),
                group_id=None,
                client_id=f"{kafka.client_id}-fish-gallery",
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # a topic made again: its new log from the start
                fetch_max_wait_ms=kafka.fetch_max_wait_ms,
                max_partition_fetch_bytes=kafka.max_message_bytes,
            )
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            self._consumer.close()
            msg = (
                f"the fish gallery topic {topic!r} does not exist on {kafka.bootstrap_servers}; "
                "create it (1 partition, cleanup.policy=compact), set kafka.create_topics: "
                "true, or name another in tasks.fish.options.gallery_topic"
            )
            raise ConfigError(msg)
        self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)
        self._publisher = Publisher(kafka)

    def read_to_end(self, timeout_s: float = READ_TIMEOUT_S) -> list[Record]:
        """Every record up to the partitions' end offsets as they are now."""
        ends = self._consumer.end_offsets(self._partitions, timeout_ms=int(timeout_s * 1000))
        deadline = time.monotonic() + timeout_s
        records: list[Record] = []
        while any(self._consumer.position(tp) < ends[tp] for tp in self._partitions):
            if time.monotonic() > deadline:
                msg = f"reading the fish gallery topic {self.topic!r} took over {timeout_s:.0f} s"
                raise BrokerError(msg)
            records += self._unpack(self._consumer.poll(timeout_ms=200))
        return records

    def poll(self) -> list[Record]:
        """The records that arrived since the last read, without waiting."""
        return self._unpack(self._consumer.poll(timeout_ms=0))

    def send(self, key: str, value: bytes | None) -> None:
        """Queue one record (``value`` None: a tombstone)."""
        self._publisher.send(self.topic, value, key.encode(), [])  # type: ignore[arg-type]

    def flush(self) -> None:
        """Block until every queued record is acknowledged (``acks=all``); raise
        :class:`BrokerError` when the broker does not take them."""
        self._publisher.flush()

    def close(self) -> None:
        """Close the reader and the writer (records not flushed yet are dropped)."""
        try:
            self._consumer.close(autocommit=False)
        finally:
            self._publisher.close()

    @staticmethod
    def _unpack(polled: dict) -> list[Record]:
        return [
            (record.key.decode(errors="replace"), record.value)
            for batch in polled.values()
            for record in batch
            if record.key is not None
        ]


__all__ = ["TOPIC_CONFIGS", "GalleryLog", "Record"]
