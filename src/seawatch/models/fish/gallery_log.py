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
the batch that made them is committed; while the broker does not acknowledge them the flush
waits and sends them again (as the dead-letter queue does), for up to :data:`FLUSH_WAIT_S`,
then raises (the worker restarts; its batch was not committed). A broker that loses the topic
(Tansu on memory, restarted) loses the shared records with it; each worker's gallery keeps
them in memory and in the file it exports on stop, which the next start reads before the topic.
"""

from __future__ import annotations

import contextlib
import logging
import time

from seawatch.config import KafkaSettings
from seawatch.contracts.errors import BrokerError, ConfigError
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.kafka_security import client_kwargs, connect_errors

log = logging.getLogger(__name__)

TOPIC_CONFIGS = {"cleanup.policy": "compact"}
FLUSH_WAIT_S = 60.0  # how long a flush waits for a broker that does not acknowledge
FLUSH_TRY_S = 5.0  # one attempt; then a new producer sends the records again
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
        self._kafka, self._create = kafka, create
        self._unacknowledged: list[Record] = []
        self._unsent = False  # a record not handed to the producer: the next flush resends
        self.resends = 0

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

    def read_to(self) -> dict[int, int]:
        """The next offset this reader would read, per partition (what it has read is
        below it)."""
        return {tp.partition: self._consumer.position(tp) for tp in self._partitions}

    def poll(self) -> list[Record]:
        """The records that arrived since the last read, without waiting."""
        return self._unpack(self._consumer.poll(timeout_ms=0))

    def send(self, key: str, value: bytes | None) -> None:
        """Queue one record (``value`` None: a tombstone); :meth:`flush` makes sure of it."""
        from kafka.errors import KafkaError

        self._unacknowledged.append((key, value))
        try:
            self._send(key, value)
        except KafkaError as exc:  # no metadata (the broker away): the flush sends it again
            self._unsent = True
            log.debug("fish_gallery_send_deferred error=%r", exc)

    def flush(self, wait_s: float = FLUSH_WAIT_S) -> None:
        """Block until every queued record is acknowledged (``acks=all``), sending them again
        while the broker does not take them; :class:`BrokerError` after ``wait_s``."""
        from kafka.errors import KafkaError

        deadline, pause = time.monotonic() + wait_s, 0.5
        while True:
            try:
                if self._unsent:
                    raise BrokerError("records were not handed to the producer")
                self._publisher.flush(timeout_s=FLUSH_TRY_S)
                self._unacknowledged.clear()
                return
            except (BrokerError, KafkaError) as exc:
                error: Exception = exc
            while True:  # wait, then a new producer sends every unacknowledged record again
                if time.monotonic() + pause > deadline:
                    n = len(self._unacknowledged)
                    msg = f"{n} fish gallery records not acknowledged in {wait_s:.0f} s: {error}"
                    raise BrokerError(msg) from error
                log.warning(
                    "fish_gallery_unacknowledged records=%d error=%r effect='the batch waits; "
                    "sent again in %.1f s'",
                    len(self._unacknowledged),
                    str(error)[:200],
                    pause,
                )
                time.sleep(pause)
                pause = min(5.0, pause * 2)
                self.resends += 1
                try:
                    self._resend()
                    break
                except (BrokerError, KafkaError) as exc:
                    error = exc

    def _resend(self) -> None:
        """A new producer, the topic made again if it is gone (so a broker that auto-creates
        topics does not make it with its defaults), and every unacknowledged record again."""
        from kafka.errors import KafkaError

        self._unsent = True
        self._publisher.reconnect()  # the old one's records are dropped: all are sent again
        if self._create:
            with contextlib.suppress(BrokerError, KafkaError):  # unreachable: the flush waits
                ensure_topics(self._kafka, [self.topic], 1, TOPIC_CONFIGS)
        for key, value in self._unacknowledged:
            self._send(key, value)
        self._unsent = False

    def _send(self, key: str, value: bytes | None) -> None:
        self._publisher.send(self.topic, value, key.encode(), [])  # type: ignore[arg-type]

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
