"""Keyed topics read and written outside the consumer group: the latest value of some keys
(a compacted state topic), the keys written since given offsets (the alerts topic's ids).

Reads go from the end backwards in growing steps, so finding the latest snapshot of a few
keys costs the same whether the broker compacts the topic (Kafka) or keeps every version
(Tansu on memory storage). Tansu was seen to report a partition's end as the base offset of
its last record batch plus one (lower than the true end when that batch held several
records), so a read goes on past the reported end until a poll comes back empty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from seawatch.config import KafkaSettings
from seawatch.contracts.errors import BrokerError
from seawatch.ingest.kafka_io import Publisher
from seawatch.ingest.kafka_security import client_kwargs, connect_errors

log = logging.getLogger(__name__)

FIRST_STEP = 256  # records read back from the end first; doubled while keys are missing
IDLE_MS = 200  # a poll this long with nothing, at or past the reported end: the end
READ_TIMEOUT_S = 30.0


class KeyedTopics:
    """Reads keyed topics from the start or the end (no group, nothing committed) and writes
    them through ``publisher``."""

    def __init__(self, kafka: KafkaSettings, publisher: Publisher) -> None:
        self.kafka = kafka
        self.publisher = publisher
        self._consumer = None

    def _reader(self):
        if self._consumer is None:
            from kafka import KafkaConsumer

            with connect_errors(self.kafka, "consumer"):
                self._consumer = KafkaConsumer(
                    **client_kwargs(self.kafka),
                    group_id=None,
                    client_id=f"{self.kafka.client_id}-state",
                    enable_auto_commit=False,
                    fetch_max_wait_ms=20,
                    max_partition_fetch_bytes=self.kafka.max_message_bytes,
                )
        return self._consumer

    def _partitions(self, topic: str) -> list:
        from kafka import TopicPartition

        ids = self._reader().partitions_for_topic(topic)
        if not ids:
            msg = f"topic {topic!r} does not exist (or the broker did not say); create it"
            raise BrokerError(msg)
        return [TopicPartition(topic, p) for p in sorted(ids)]

    def ends(self, topic: str) -> dict[int, int]:
        """Each partition's end offset as the broker reports it (a lower bound on Tansu)."""
        from kafka.errors import KafkaError

        try:
            ends = self._reader().end_offsets(self._partitions(topic))
        except KafkaError as exc:
            raise BrokerError(f"end offsets of {topic}: {exc}") from exc
        return {tp.partition: offset for tp, offset in ends.items()}

    def latest(self, topic: str, keys: Collection[str]) -> dict[str, bytes]:
        """The newest value of each of ``keys`` found in ``topic`` (keys never written, or
        whose newest value is a tombstone, are left out)."""
        from kafka.errors import KafkaError

        wanted, found = set(keys), {}
        try:
            for tp in self._partitions(topic):
                if not wanted - found.keys():
                    break
                found.update(self._latest_in(tp, wanted - found.keys()))
        except KafkaError as exc:
            raise BrokerError(f"reading {topic}: {exc}") from exc
        return {k: v for k, v in found.items() if v is not None}

    def _latest_in(self, tp, wanted: set[str]) -> dict[str, bytes | None]:
        reader = self._reader()
        first = reader.beginning_offsets([tp])[tp]
        stop, step = None, FIRST_STEP
        start = max(first, reader.end_offsets([tp])[tp] - step)
        found: dict[str, bytes | None] = {}
        while True:
            in_step = {}  # a later record of the step overwrites an earlier one
            for record in self._read({tp: start}, stop):
                key = record.key.decode() if record.key else None
                if key in wanted and key not in found:  # found: in a later step, so newer
                    in_step[key] = record.value
            found.update(in_step)
            if start <= first or not wanted - found.keys():
                return found
            stop, step = start, step * 2
            start = max(first, start - step)

    def keys_since(self, topic: str, positions: dict[int, int]) -> list[str]:
        """The keys of every record in ``topic`` from ``positions`` (partition -> offset; a
        partition not named: from its beginning) to the end, in offset order per partition."""
        from kafka.errors import KafkaError

        try:
            partitions = self._partitions(topic)
            firsts = self._reader().beginning_offsets(partitions)
            starts = {tp: max(firsts[tp], positions.get(tp.partition, 0)) for tp in partitions}
            return [r.key.decode() for r in self._read(starts, None) if r.key]
        except KafkaError as exc:
            raise BrokerError(f"reading {topic}: {exc}") from exc

    def _read(self, starts: dict, stop: int | None) -> list:
        """Records from ``starts`` up to ``stop`` (exclusive; None: the end)."""
        if stop is not None and all(offset >= stop for offset in starts.values()):
            return []
        reader = self._reader()
        reader.assign(list(starts))
        for tp, offset in starts.items():
            reader.seek(tp, offset)
        ends = reader.end_offsets(list(starts)) if stop is None else dict.fromkeys(starts, stop)
        records: list = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while True:
            polled = reader.poll(timeout_ms=IDLE_MS)
            for batch in polled.values():
                records.extend(r for r in batch if stop is None or r.offset < stop)
            done = all(reader.position(tp) >= ends[tp] for tp in starts)
            if (done and not polled) or (stop is not None and done):
                return records
            if time.monotonic() > deadline:
                msg = f"reading {','.join(map(str, starts))} took over {READ_TIMEOUT_S:g} s"
                raise BrokerError(msg)

    def put(self, topic: str, items: dict[str, bytes]) -> None:
        """Write each ``key -> value`` and block until the broker has acknowledged them all
        (BrokerError otherwise)."""
        from kafka.errors import KafkaError

        try:
            for key, value in items.items():
                self.publisher.send(topic, value, key.encode(), [])
            self.publisher.flush()
        except KafkaError as exc:
            raise BrokerError(f"writing {topic}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None


__all__ = ["KeyedTopics"]
