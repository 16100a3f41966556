"""Keeping the daemon's topics in existence.

A broker without persistent storage (Tansu on memory, a test Kafka) loses every topic when
it restarts, and an operator may delete one by hand. Consumers and producers then wait for
metadata that never comes, and a dead-letter send blocks. The keeper recreates the missing
topics; the pipeline asks it whenever a poll comes back empty, at most every few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from seawatch.contracts.errors import BrokerError

log = logging.getLogger(__name__)


class TopicKeeper:
    """Calls ``create`` (create the missing topics, return their names) at most every
    ``interval_s``; a broker that cannot be reached is logged once per outage, not raised."""

    def __init__(
        self,
        create: Callable[[], list[str]],
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._create = create
        self.interval_s = interval_s
        self._clock = clock
        self._next = clock() + interval_s  # the daemon created them at start
        self._unreachable = False
        self.recreated: list[str] = []

    def check(self) -> list[str]:
        """Recreate missing topics if the interval has passed; return those created."""
        now = self._clock()
        if now < self._next:
            return []
        self._next = now + self.interval_s
        try:
            created = self._create()
        except BrokerError as exc:
            if not self._unreachable:
                log.warning("broker_unreachable error=%r effect='topics checked again later'", exc)
            self._unreachable = True
            return []
        if self._unreachable:
            log.info("broker_reachable")
            self._unreachable = False
        if created:
            self.recreated.extend(created)
            log.warning(
                "topics_recreated topics=%s reason='missing on the broker (restarted without "
                "persistent storage, or deleted)'",
                ",".join(created),
            )
        return created


__all__ = ["TopicKeeper"]
