"""Merges a person undid, to the shared fish gallery: for each, the merged id's record again
with ``merged_into`` null (:func:`~seawatch.models.fish.gallery_records.unmerge_record`),
the record every worker of the daemon applies as an unmerge (its gallery's
``set_merged_into(id, None)`` and its store's ``fish_merges`` survivor NULL); later
sightings of that fish are reported under its own id again.

An undo is written with ``to_gallery = 1`` (:mod:`seawatch.review.merge_reviews`); a thread
reads the gallery topic, sends the records, flushes them and clears the flag, so a broker
outage delays the unmerge and loses nothing. A merged id the topic does not hold (a daemon
with ``shared_gallery: false``, or another consumer group) has nothing to undo there.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from seawatch.contracts.errors import BrokerError, ConfigError
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.gallery_records import unmerge_record

log = logging.getLogger(__name__)


def pending_undos(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """``(merged id, user)`` of the undone merges not yet written to the gallery topic."""
    return db.execute(
        "SELECT individual, reviewed_by FROM fish_merge_reviews WHERE to_gallery = 1 "
        "ORDER BY reviewed_at_ns"
    ).fetchall()


def send_undos(
    db: sqlite3.Connection, gallery_log: GalleryLog, latest: dict[str, bytes | None]
) -> int:
    """Write the unmerge record of each pending undo to the gallery topic, flushed; return
    how many went. ``latest``: each individual's latest record, as read so far from this
    ``gallery_log`` (read on to the topic's end here: the merged id's record is the base)."""
    for key, value in gallery_log.read_to_end():
        if "/" not in key:  # individuals, not their further views
            latest[key] = value
    pending = pending_undos(db)
    sent, done = 0, []
    for individual, user in pending:
        value = latest.get(individual)
        if value is None or json.loads(value).get("merged_into") is None:
            log.info(
                "fish_unmerge_not_in_gallery individual=%s effect='nothing to undo in the "
                "shared gallery (not held there, or not merged there)'",
                individual,
            )
        else:
            gallery_log.send(individual, unmerge_record(value, worker=f"review:{user}"))
            sent += 1
        done.append(individual)
    gallery_log.flush()
    db.executemany(
        "UPDATE fish_merge_reviews SET to_gallery = 0 WHERE individual = ?", [(i,) for i in done]
    )
    return sent


class GalleryUndoSender:
    """Sends pending undos every ``every_s`` seconds on a daemon thread; ``open_log`` opens
    the gallery topic (tried again each turn while the broker cannot be reached)."""

    def __init__(
        self, store_path: Path, open_log: Callable[[], GalleryLog], every_s: float = 1.0
    ) -> None:
        self.store_path, self.open_log, self.every_s = store_path, open_log, every_s
        self.gallery_log: GalleryLog | None = None
        self.latest: dict[str, bytes | None] = {}  # each individual's latest record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-unmerge", daemon=True)

    def start(self) -> GalleryUndoSender:
        self._thread.start()
        return self

    def _run(self) -> None:
        db = sqlite3.connect(self.store_path, timeout=15.0, isolation_level=None)  # its own
        wait = self.every_s
        try:
            while not self._stop.wait(wait):
                try:
                    if not pending_undos(db):
                        continue
                    if self.gallery_log is None:
                        self.gallery_log = self.open_log()
                    sent = send_undos(db, self.gallery_log, self.latest)
                    log.info("fish_unmerges_sent records=%d", sent)
                    wait = self.every_s
                except (BrokerError, ConfigError, sqlite3.Error, OSError) as exc:  # tried again
                    wait = min(60.0, wait * 2)
                    log.warning("fish_unmerge_deferred retry_s=%.0f error=%r", wait, exc)
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread and close the gallery topic."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.gallery_log is not None:
            self.gallery_log.close()


__all__ = ["GalleryUndoSender", "pending_undos", "send_undos"]
