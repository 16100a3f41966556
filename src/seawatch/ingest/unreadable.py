"""Records the Kafka client itself cannot parse, and stepping past them.

kafka-python raises ``CorruptRecordError`` from ``poll`` when a record in a fetched batch
cannot be parsed (a header key that is not UTF-8, a bad CRC). The consumer's position
stays on that record, so every later poll, and every restart, fails at the same offset: a
poison pill that would stop the whole stream. This module finds the partition at fault,
seeks past the record and hands back an :class:`UnreadableRecord` that takes the record's
place in the batch, so the DLQ gets a placeholder naming the partition, offset and error
(the original stays in the topic at that offset for as long as the topic keeps it), and the
batch's commit moves the group past it.

Records that share a producer batch with the unreadable one and come after it cannot be
parsed either (the client reads a batch front to back); each becomes its own placeholder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """Where an unparsable record is and why; stands in for it on its way to the DLQ."""

    topic: str
    partition: int
    offset: int
    error: str
    key: bytes | None = None
    value: bytes = b""
    headers: list = field(default_factory=list)
    timestamp: int = 0


def skip_unreadable(consumer, error: Exception) -> dict:
    """After ``poll`` raised ``error``: seek the partition at fault one past the record and
    return ``{partition: [placeholder]}``; ``{}`` (logged) when it cannot be located.

    kafka-python names the partition only in its fetcher's state (the partition records it
    was reading when the parse failed; kafka-python 2.x and 3.x alike), so that is read here.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    tp = getattr(current, "topic_partition", None)
    reason = f"{type(error).__name__}: {error}"
    if tp is None or tp not in consumer.assignment():
        log.error("unreadable_record_not_located error=%r effect='polls may stall'", reason)
        return {}
    offset = consumer.position(tp)
    consumer.seek(tp, offset + 1)
    log.error(
        "unreadable_record source=%s/%d/%d error=%r effect='skipped; a placeholder goes to the "
        "DLQ, the record stays in the topic'",
        tp.topic,
        tp.partition,
        offset,
        reason,
    )
    placeholder = UnreadableRecord(
        tp.topic, tp.partition, offset, reason, timestamp=int(time.time() * 1000)
    )
    return {tp: [placeholder]}


__all__ = ["UnreadableRecord", "skip_unreadable"]
