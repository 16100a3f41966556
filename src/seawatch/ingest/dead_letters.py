"""The dead-letter queue: unusable messages go to their own topic, with the reason.

A bad message's offset is committed only after the broker has acknowledged its copy in the
DLQ topic. When the broker cannot take it (down, restarting, the topic gone), the copies
stay pending here and are sent again, on a fresh producer, with growing waits, until the
broker acknowledges them or the daemon is asked to stop; the batch's offsets wait with them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from seawatch.contracts.errors import BrokerError
from seawatch.ingest.kafka_io import Publisher

log = logging.getLogger(__name__)

Message = tuple[bytes, bytes | None, list[tuple[str, bytes]]]  # value, key, headers
_FRAMING_BYTES = 1024  # record and batch framing around key, value and headers, generously


class DeadLetterQueue:
    """Sends unusable messages to the DLQ topic with the original value and headers plus
    ``error-stage``, ``error`` and ``source`` (topic/partition/offset) headers."""

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        *,
        first_wait_s: float = 0.5,
        max_wait_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._publisher = publisher
        self.topic = topic
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._pending: list[Message] = []
        self.resends = 0

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return len(self._pending)

    def send(self, record, stage: str, error: str) -> None:
        """Queue ``record`` (a kafka ConsumerRecord) for the DLQ with its reason."""
        headers = [(k, v) for k, v in (record.headers or []) if v is not None]
        headers += [
            ("error-stage", stage.encode()),
            ("error", error.encode("utf-8", errors="replace")[:4096]),
            ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self._pending.append(self._fit(record.value or b"", record.key, headers))

    def _fit(self, value: bytes, key: bytes | None, headers: list) -> Message:
        """A value that fills a Kafka message to the brim no longer fits beside the error
        headers; it is left out (the original stays in its topic at the source offset)."""
        limit = self._publisher.max_message_bytes
        size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        if size + _FRAMING_BYTES <= limit:
            return value, key, headers
        note = f"{len(value)} bytes, too large beside the error headers for the {limit}-byte "
        note += "message limit; the original is in its topic at the source offset"
        return b"", key, [*headers, ("value-omitted", note.encode())]

    def flush(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Send the pending messages and block until the broker has acknowledged each one.

        Raises BrokerError only when ``should_stop()`` turns true while the broker still
        refuses them (their offsets must then stay uncommitted).
        """
        wait = self.first_wait_s
        while self._pending:
            self._pending, error = self._send_pending()
            if not self._pending:
                return
            if should_stop():
                msg = f"{len(self._pending)} dead letters not acknowledged at shutdown: {error}"
                raise BrokerError(msg)
            log.warning(
                "dlq_unacknowledged pending=%d error=%s effect='offsets wait; resent in %.1f s'",
                len(self._pending),
                error,
                wait,
            )
            self._sleep(wait)
            wait = min(self.max_wait_s, wait * 2)
            self.resends += 1
            self._publisher.reconnect()  # a producer can be stuck on a broker's lost state

    def _send_pending(self) -> tuple[list[Message], str]:
        """One attempt: the messages still unacknowledged afterwards, and why."""
        from kafka.errors import KafkaError

        futures = []
        error = ""
        try:
            for value, key, headers in self._pending:
                futures.append(self._publisher.send(self.topic, value, key, headers))
            self._publisher.flush()
        except (BrokerError, KafkaError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        unacknowledged = [
            message
            for message, future in zip(self._pending, futures, strict=False)
            if not (future.is_done and future.succeeded())
        ]
        return unacknowledged + self._pending[len(futures) :], error


__all__ = ["DeadLetterQueue"]
