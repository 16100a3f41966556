"""Noticing a frame topic that was deleted and created again under the same name.

A broker without persistent storage (Tansu on memory, a test Kafka) loses its topics when
it restarts; the topic keeper, a producer or an operator then creates them again, empty.
The consumer still holds its old positions: where the old topic had reached offset 200, it
waits for offset 200 of the new one and skips the first 200 frames sent after the restart
(or, if the new topic is still shorter, resets only by chance of timing). Kafka gives every
topic a UUID, so a recreated topic is recognised for certain by its new id, and every frame
in it is new: the consumer is sent back to its beginning.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

log = logging.getLogger(__name__)

_NO_ID = uuid.UUID(int=0)  # what brokers answer for "no topic id" (pre-3.0 metadata)


class TopicIdWatch:
    """Remembers each topic's id as first seen and reports the topics whose id changed."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self._ids: dict[str, uuid.UUID] = {}

    def changed(self, current_ids: dict[str, uuid.UUID | None]) -> list[str]:
        """Topics whose id differs from the one remembered (remembering the new one);
        topics without an id yet (metadata not fetched, broker down) are skipped."""
        changed = []
        for topic in self.topics:
            current = current_ids.get(topic)
            if current is None or current == _NO_ID:
                continue
            prior = self._ids.setdefault(topic, current)
            if prior != current:
                self._ids[topic] = current
                changed.append(topic)
        return changed


def rewind_recreated(consumer, watch: TopicIdWatch) -> list[str]:
    """Seek ``consumer``'s assigned partitions of recreated topics to their beginning and
    return those topics. kafka-python keeps topic ids only in its cluster metadata."""
    cluster = consumer._client.cluster
    recreated = watch.changed({topic: cluster.topic_id(topic) for topic in watch.topics})
    if not recreated:
        return []
    partitions = [tp for tp in consumer.assignment() if tp.topic in recreated]
    if partitions:
        consumer.seek_to_beginning(*partitions)
    log.warning(
        "topics_rewound topics=%s partitions=%d reason='topic recreated (new topic id): every "
        "message in it is new' effect='read from its beginning'",
        ",".join(recreated),
        len(partitions),
    )
    return recreated


__all__ = ["TopicIdWatch", "rewind_recreated"]
