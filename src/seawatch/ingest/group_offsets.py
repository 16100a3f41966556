"""Starting a new consumer group where another one stopped.

A lane's consumer group (``<group>.<lane>``) is new the first time lanes are switched on;
without a committed offset it would read its topics from ``auto_offset_reset`` (the whole
topic again, or nothing of the backlog). :func:`seed_offsets` copies the base group's
committed offsets of the lane's partitions into the lane's group, for the partitions the
lane's group has none of, so the lanes carry on from where the single consumer stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from seawatch.config import KafkaSettings
from seawatch.ingest.kafka_security import client_kwargs, connect_errors

log = logging.getLogger(__name__)


def seed_offsets(
    kafka: KafkaSettings, from_group: str, to_group: str, topics: Iterable[str]
) -> dict[tuple[str, int], int]:
    """Commit ``from_group``'s offsets of ``topics`` for ``to_group`` where ``to_group`` has
    none; return what was copied, ``(topic, partition) -> offset``."""
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    if from_group == to_group:
        return {}
    kwargs = {**client_kwargs(kafka), "enable_auto_commit": False}
    with connect_errors(kafka, "consumer"):
        source = KafkaConsumer(**kwargs, group_id=from_group)
        target = KafkaConsumer(**kwargs, group_id=to_group)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(source.partitions_for_topic(topic) or ())
        ]
        copy = {}
        for tp in partitions:
            offset = source.committed(tp)
            if offset is not None and target.committed(tp) is None:
                copy[tp] = OffsetAndMetadata(offset, None, -1)
        if copy:
            target.assign(list(copy))  # a commit outside any generation: the group is empty
            target.commit(copy)
            log.info(
                "offsets_seeded group=%s from_group=%s partitions=%d",
                to_group,
                from_group,
                len(copy),
            )
        return {(tp.topic, tp.partition): meta.offset for tp, meta in copy.items()}
    finally:
        source.close(autocommit=False)
        target.close(autocommit=False)


__all__ = ["seed_offsets"]
