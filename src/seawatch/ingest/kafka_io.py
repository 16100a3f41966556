"""Kafka clients on kafka-python: the frame source (a consumer group member), the frame
publisher and the dead-letter queue, and topic creation.

The consumer is used from one thread only (kafka-python's consumer is not thread-safe):
the pipeline polls and commits from its loop. Partition changes reach the
:class:`~seawatch.contracts.partitions.PartitionListener` s given to
:meth:`FrameSource.listen` (the alert state follows them), from the client's own thread while
the loop waits inside a poll.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

from seawatch.config import KafkaSettings
from seawatch.contracts.errors import BrokerError
from seawatch.contracts.partitions import Partition, PartitionListener
from seawatch.ingest.kafka_security import client_kwargs, connect_errors
from seawatch.ingest.recreated_topics import TopicIdWatch, rewind_recreated
from seawatch.ingest.unreadable import skip_unreadable

log = logging.getLogger(__name__)


def _require_crc32c() -> None:
    try:
        import crc32c  # noqa: F401
    except ImportError:  # pragma: no cover - a core dependency
        log.warning("crc32c_missing effect='CRC checks run in pure Python, tens of times slower'")


def _kafka_settings(kafka: KafkaSettings | str) -> KafkaSettings:
    """``kafka`` itself, or plaintext settings for a bare bootstrap string (tests, tools)."""
    return KafkaSettings(bootstrap_servers=kafka) if isinstance(kafka, str) else kafka


def ensure_topics(
    kafka: KafkaSettings | str,
    topics: Iterable[str],
    partitions: int,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with the topic ``configs``, e.g.
    ``cleanup.policy``); return the ones created. ``kafka`` is the connection settings (TLS,
    SASL), or a bare bootstrap string for a plaintext broker."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    settings = _kafka_settings(kafka)
    with connect_errors(settings, "admin client"):
        admin = KafkaAdminClient(**client_kwargs(settings), client_id="seawatch-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(t, partitions, 1, topic_configs=configs or {}) for t in missing]
                )
        return missing
    finally:
        admin.close()


def topic_partitions(kafka: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists."""
    from kafka.admin import KafkaAdminClient

    with connect_errors(kafka, "admin client"):
        admin = KafkaAdminClient(**client_kwargs(kafka), client_id="seawatch-admin")
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    return {  # kafka-python 3 names the topic "name", 2.x "topic"
        t.get("name") or t["topic"]: len(t["partitions"])
        for t in described
        if not t.get("error_code") and t.get("partitions")
    }


class FrameSource:
    """A consumer-group member that polls batches of frame messages and commits offsets."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: list[str] | None = None,
        *,
        group_id: str | None = None,
    ) -> None:
        """``group_id``: the consumer group, when not ``settings.group_id`` (a lane's)."""
        from kafka import KafkaConsumer

        _require_crc32c()
        self.settings = settings
        self.commit_failures = 0
        self._topic_ids = TopicIdWatch(topics or settings.topics)
        self._listeners: list[PartitionListener] = []
        self._held: dict[tuple[str, int], int] = {}  # (topic, partition) -> highest offset
        self._joined = False  # the group gave this member its partitions (none, maybe)
        with connect_errors(settings, "consumer"):
            self._consumer = KafkaConsumer(
                **client_kwargs(settings),
                group_id=group_id or settings.group_id,
                client_id=settings.client_id,
                enable_auto_commit=False,
                auto_offset_reset=settings.auto_offset_reset,
                max_poll_records=settings.max_poll_records,
                max_poll_interval_ms=settings.max_poll_interval_ms,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
                fetch_max_bytes=settings.fetch_max_bytes,
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                metadata_max_age_ms=settings.metadata_max_age_ms,
                max_partition_fetch_bytes=settings.max_message_bytes,
            )
        self._consumer.subscribe(
            list(topics or settings.topics), listener=_rebalance_listener(self)
        )

    def listen(self, listener: PartitionListener) -> None:
        """Tell ``listener`` when this member's partitions are revoked, assigned or rewound
        (call before the first poll: the first assignment comes with it)."""
        self._listeners.append(listener)

    def _notify(self, event: str, partitions) -> None:
        named = [Partition(tp.topic, tp.partition) for tp in partitions]
        if event in ("assigned", "revoked"):  # a revoke starts a rebalance: joining again
            self._joined = event == "assigned"  # (a rewind changes nothing of the group)
        if event == "revoked":  # a held offset could move a later owner's commit back
            for partition in named:
                self._held.pop(partition, None)
        log.info("partitions_%s partitions=%s", event, ",".join(map(str, sorted(named))) or "-")
        for listener in self._listeners:
            getattr(listener, f"partitions_{event}")(named)

    def poll_batch(self, max_records: int, max_wait_ms: int, idle_ms: int = 200) -> list:
        """Collect up to ``max_records`` messages, waiting at most ``max_wait_ms`` once the
        first has arrived (or ``idle_ms`` when none comes; while this member joins its group,
        an idle poll waits :meth:`join_wait_ms` instead)."""
        from kafka.errors import CorruptRecordError

        self.rewind_recreated_topics()  # a few dict lookups; a new topic id means a new log
        if idle_ms > 0 and not self._joined:
            idle_ms = max(idle_ms, self.join_wait_ms())
        records: list = []
        deadline: float | None = None
        while len(records) < max_records:
            if deadline is None:
                timeout_ms = idle_ms
            else:
                timeout_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            try:
                polled = self._consumer.poll(
                    timeout_ms=timeout_ms, max_records=max_records - len(records)
                )
            except CorruptRecordError as exc:  # a poison pill: step past it, DLQ a placeholder
                polled = skip_unreadable(self._consumer, exc)
            if polled and (recreated := self.rewind_recreated_topics()):
                # a topic made again while this poll waited (a join spans a broker restart):
                # what it brought of it is read again from the new log's beginning, not twice
                records = [r for r in records if r.topic not in recreated]
                polled = {tp: b for tp, b in polled.items() if tp.topic not in recreated}
            for batch in polled.values():
                records.extend(batch)
            if deadline is None and records:
                deadline = time.monotonic() + max_wait_ms / 1000
            if not polled and (deadline is None or time.monotonic() >= deadline):
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        return records

    def join_wait_ms(self) -> int:
        """How long an idle poll waits while this member joins its group (from its start or
        a revoke to the next assignment, which may be empty): the rebalance timeout
        (``max_poll_interval_ms``), the longest a broker holds a JoinGroup.

        kafka-python 3.0.12 sends the JoinGroup and SyncGroup from its own thread, and a
        poll awaits them at most its own timeout; a join that completes while no poll awaits
        it is thrown away and a new JoinGroup sent (``join_group_async`` replaces a *done*
        join task). Tansu holds each JoinGroup for seconds (5 s with a 10-s rebalance
        timeout), and with 200-ms idle polls its answer often came between two of them: the
        demo's daemons took up to a minute, not 5 s, to get their partitions (rounds of 5 s
        in the client's debug log). One poll that outlasts the hold is there when it comes."""
        return self.settings.max_poll_interval_ms

    def assigned(self) -> bool:
        """Whether the group has given this member its partitions yet (safe to ask from
        another thread: a read of the consumer's subscription state)."""
        try:
            return bool(self._consumer.assignment())
        except RuntimeError:  # the assignment changed while it was read: ask again later
            return False

    def hold(self, records: list) -> None:
        """``records`` are stored but may not be committed yet (the alert state that covers
        them is not written): their offsets go with the next :meth:`commit`."""
        for record in records:
            key = (record.topic, record.partition)
            self._held[key] = max(self._held.get(key, -1), record.offset)

    def commit(self, records: list) -> None:
        """Commit, per partition, the offset after the highest one in ``records`` (and in
        those held before); only for the partitions this member still owns. A partition
        revoked while its records were in flight is left to its new owner, which reads it
        from the last committed offset (the broker takes a commit from any member of the
        current generation, so without this check a late commit could skip records the new
        owner never saw)."""
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import KafkaError

        highest = {TopicPartition(*key): offset for key, offset in self._held.items()}
        self._held.clear()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            highest[tp] = max(highest.get(tp, -1), record.offset)
        owned = self._consumer.assignment()
        for tp in [tp for tp in highest if tp not in owned]:
            del highest[tp]
            log.info("commit_skipped partition=%s/%d reason='revoked while in flight'", *tp)
        if not highest:
            return
        offsets = {tp: OffsetAndMetadata(offset + 1, None, -1) for tp, offset in highest.items()}
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance while the batch was in flight (CommitFailed, RebalanceInProgress,
            # IllegalGeneration), or the broker gone. The batch's records are durable: whoever
            # owns the partition next replays it, and the replay overwrites its own records.
            self.commit_failures += 1
            log.warning(
                "commit_failed partitions=%d error=%s effect='batch replayed after restart or "
                "rebalance; its records are overwritten, not doubled'",
                len(offsets),
                type(exc).__name__,
            )

    def assignment(self) -> set:
        return set(self._consumer.assignment())

    def rewind_recreated_topics(self) -> list[str]:
        """Read recreated frame topics (a new topic id: broker restarted without storage,
        topic deleted and made again) from their beginning; return those topics."""
        recreated = rewind_recreated(self._consumer, self._topic_ids)
        if recreated:
            self._notify("rewound", [tp for tp in self.assignment() if tp.topic in recreated])
        return recreated

    def lag(self) -> int | None:
        """Messages between the consumer's positions and the ends of its partitions (None
        when the broker cannot say right now)."""
        partitions = list(self._consumer.assignment())
        if not partitions:
            return 0
        try:
            ends = self._consumer.end_offsets(partitions)
            return sum(max(0, ends[tp] - self._consumer.position(tp)) for tp in partitions)
        except Exception as exc:  # a metric: never worth failing the pipeline over
            log.debug("lag_unavailable error=%s", exc)
            return None

    def pause(self) -> None:
        """Stop fetching from every assigned partition (backpressure); polls keep the group
        membership alive and return nothing until :meth:`resume`."""
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        """Fetch again from every paused partition, from where consumption stopped."""
        self._consumer.resume(*self._consumer.paused())

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def _rebalance_listener(source: FrameSource):
    """A kafka-python rebalance listener that passes the changes on to ``source``'s listeners
    (built lazily: kafka-python is imported only where a client is made)."""
    from kafka import ConsumerRebalanceListener

    class Rebalances(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked) -> None:  # lost membership too (default)
            source._notify("revoked", revoked)

        def on_partitions_assigned(self, assigned) -> None:
            source._notify("assigned", assigned)

    return Rebalances()


class Publisher:
    """A producer for frames (and for the DLQ); ``flush`` blocks until the broker has all."""

    def __init__(self, kafka: KafkaSettings | str, max_message_bytes: int | None = None) -> None:
        """``kafka``: the connection settings (TLS, SASL), or a bare bootstrap string for a
        plaintext broker; ``max_message_bytes`` defaults to the settings' own."""
        _require_crc32c()
        self.settings = _kafka_settings(kafka)
        self.max_message_bytes = max_message_bytes or self.settings.max_message_bytes
        self._producer = self._connect()
        self._futures: list = []

    def _connect(self):
        from kafka import KafkaProducer

        with connect_errors(self.settings, "producer"):
            return KafkaProducer(
                **client_kwargs(self.settings),
                acks="all",
                linger_ms=5,
                batch_size=1 << 20,
                max_request_size=self.max_message_bytes,
                retries=5,
                # An idempotent producer whose broker lost its state (a restart without
                # persistent storage) is answered UnknownProducerId forever; the records
                # this producer writes (frames, dead letters, alerts) are keyed and
                # idempotent downstream, so a rare duplicate on retry is harmless.
                enable_idempotence=False,
                max_block_ms=10_000,  # a send to a vanished topic waits this long, not 60 s
            )

    def send(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]):
        """Queue one message; returns its future (``succeeded()`` once acknowledged)."""
        future = self._producer.send(topic, value=value, key=key, headers=headers)
        self._futures.append(future)
        return future

    def reconnect(self) -> None:
        """Drop the producer and whatever it still holds, and connect a new one."""
        old, self._futures = self._producer, []
        with contextlib.suppress(Exception):
            old.close(timeout=0)
        self._producer = self._connect()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every queued message is acknowledged; raise BrokerError otherwise."""
        self._producer.flush(timeout=timeout_s)
        futures, self._futures = self._futures, []
        failed = [f for f in futures if f.failed()]
        if failed:
            msg = f"{len(failed)} of {len(futures)} messages were not acknowledged: "
            raise BrokerError(msg + str(failed[0].exception))

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the producer; messages still unacknowledged after ``timeout_s`` are dropped
        (a dead letter among them was never committed, so it comes back at the next start)."""
        from kafka.errors import KafkaError

        try:
            self._producer.close(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("producer_close_incomplete error=%s", type(exc).__name__)


__all__ = ["FrameSource", "Publisher", "ensure_topics", "topic_partitions"]
