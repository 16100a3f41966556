"""Decisions to Kafka: a thread sends the audit entries not yet published to the ``reviews``
topic (keyed by subject, so a compacted topic keeps each subject's latest decision) and marks
them published once the broker has acknowledged them. The entry is written with the decision,
so a broker outage delays publication and loses nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading

from seawatch.contracts.errors import BrokerError

log = logging.getLogger(__name__)


def publish_pending(db: sqlite3.Connection, publisher, topic: str, limit: int = 500) -> int:
    """Send up to ``limit`` unpublished decisions (oldest first); return how many went."""
    rows = db.execute(
        "SELECT id, subject, action, user, at_ns, before, after FROM decisions "
        "WHERE published = 0 ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    if not rows:
        return 0
    for ident, subject, action, user, at_ns, before, after in rows:
        value = {
            "id": ident,
            "subject": subject,
            "action": action,
            "user": user,
            "at_ns": at_ns,
            "before": json.loads(before),
            "after": json.loads(after),
        }
        publisher.send(topic, json.dumps(value).encode(), subject.encode(), [])
    publisher.flush()
    db.executemany("UPDATE decisions SET published = 1 WHERE id = ?", [(r[0],) for r in rows])
    return len(rows)


class DecisionPublisher:
    """Publishes pending decisions every ``every_s`` seconds on a daemon thread; ``connect``
    makes the producer (tried again each turn while the broker cannot be reached)."""

    def __init__(self, store_path, connect, topic: str, every_s: float = 1.0):
        self.store_path, self.connect, self.topic, self.every_s = (
            store_path,
            connect,
            topic,
            every_s,
        )
        self.publisher = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-publish", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.store_path, timeout=15.0, isolation_level=None)  # its own
        wait = self.every_s
        try:
            while not self._stop.wait(wait):
                pending = 0
                try:
                    pending = db.execute(
                        "SELECT COUNT(*) FROM decisions WHERE published = 0"
                    ).fetchone()[0]
                    if not pending:
                        continue
                    if self.publisher is None:  # connect only when there is something to send
                        self.publisher = self.connect()
                    while publish_pending(db, self.publisher, self.topic):
                        pass
                    wait = self.every_s
                except (BrokerError, sqlite3.Error, OSError) as exc:  # kept; tried again, later
                    wait = min(60.0, wait * 2)
                    log.warning(
                        "review_publish_deferred pending=%s retry_s=%.0f error=%r",
                        pending, wait, exc,
                    )  # fmt: skip
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread and close the producer."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.publisher is not None:
            self.publisher.close()


__all__ = ["DecisionPublisher", "publish_pending"]
