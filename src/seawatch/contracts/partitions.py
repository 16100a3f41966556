"""Partition ownership, as the consumer group hands it out: what the frame source tells the
parts of the daemon whose state follows the partitions (the alert state).

A partition is named by ``(topic, partition)``. The source calls a listener from the Kafka
client's own thread while the loop waits inside a poll, so a listener only records what
happened and acts on it later, on the loop's thread.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple, Protocol


class Partition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}"


class PartitionListener(Protocol):
    """Told when this member's partitions change. Called from the Kafka client's thread:
    implementations must return at once (no I/O)."""

    def partitions_revoked(self, partitions: Collection[Partition]) -> None:
        """These partitions are no longer this member's (a rebalance, a lost membership,
        the consumer closing); their records may be in flight and must not be judged here."""

    def partitions_assigned(self, partitions: Collection[Partition]) -> None:
        """These partitions are this member's now (consumption resumes at their committed
        offsets)."""

    def partitions_rewound(self, partitions: Collection[Partition]) -> None:
        """These partitions' topic was recreated: their offsets start again from 0."""


__all__ = ["Partition", "PartitionListener"]
