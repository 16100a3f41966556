"""What people decided about fish ids, to the shared fish gallery's topic, which every worker
of the daemon applies (:class:`~seawatch.models.fish.gallery_records.RecordApplier`):

- an **undo** of an automatic merge (:mod:`seawatch.review.merge_reviews`): the merged id's
  latest record again with ``merged_into`` null (:func:`~seawatch.models.fish.gallery_records.
  unmerge_record`); workers unmerge it (their store's ``fish_merges`` survivor NULL) and later
  sightings of that fish are reported under its own id again;
- a **merge** of A into B on the fish page (:mod:`seawatch.review.gallery_edits`): A's latest
  record with ``merged_into`` = B, ``merged_by`` = ``review:<user>``, ``merge_rule`` =
  ``person`` (:func:`~seawatch.models.fish.gallery_records.merge_record`); later sightings
  of A are reported as B;
- a **rename** of A to N: a new individual N (A's latest record under the new name, not
  provisional, the same enrolling views; :func:`~seawatch.models.fish.gallery_records.
  renamed_record`), flushed, then A's record merged into N, flushed: ``resolve(A) == N``.

Each waits with ``to_gallery = 1`` in the store; a thread of ``review serve``
(:class:`GallerySender`) reads the topic, sends them in decision order, flushes and clears
the flags, so a broker outage delays them and loses nothing. An id the topic does not hold (a
daemon with ``shared_gallery: false``, another consumer group, a known fish of the model's
gallery renamed) has nothing to change there: logged once, with what it means, and cleared.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seawatch.contracts.errors import BrokerError, ConfigError
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.gallery_records import merge_record, renamed_record, unmerge_record
from seawatch.storage.fish_merges import PERSON

log = logging.getLogger(__name__)

UNDO = "undo"
Record = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class GalleryWrite:
    """One decision waiting for the gallery topic: ``action`` (undo, merge, rename) of
    ``individual`` (into / to ``target``) by ``user`` at ``at_ns``; ``edit_id``: its
    ``fish_gallery_edits`` row (None: an undo, keyed by its ``fish_merge_reviews`` row)."""

    at_ns: int
    action: str
    individual: str
    target: str | None
    user: str
    edit_id: int | None = None


def pending_writes(db: sqlite3.Connection) -> list[GalleryWrite]:
    """The undos and the fish page's merges and renames not yet written to the gallery
    topic, in decision order."""
    undos = db.execute(
        "SELECT reviewed_at_ns, individual, reviewed_by FROM fish_merge_reviews "
        "WHERE to_gallery = 1"
    ).fetchall()
    edits = db.execute(
        "SELECT decided_at_ns, action, individual, target, decided_by, id "
        "FROM fish_gallery_edits WHERE to_gallery = 1"
    ).fetchall()
    writes = [GalleryWrite(at, UNDO, individual, None, user) for at, individual, user in undos]
    writes += [GalleryWrite(*row) for row in edits]
    return sorted(writes, key=lambda w: (w.at_ns, w.edit_id or 0))


def gallery_records(write: GalleryWrite, latest: dict[str, bytes | None]) -> list[Record] | str:
    """The records that carry ``write`` to the topic, in order, from each individual's
    ``latest`` record; or, when there is nothing to send, what that means."""
    worker = f"review:{write.user}"
    value = latest.get(write.individual)
    if write.action == UNDO:
        if value is None or json.loads(value).get("merged_into") is None:
            return "nothing to undo in the shared gallery (not held there, or not merged there)"
        return [(write.individual, unmerge_record(value, worker=worker))]
    if value is None:
        return (
            "the shared gallery does not hold this id (a one-process daemon, another group, "
            "or a known fish of the model's gallery): workers keep reporting it as it was"
        )
    target = str(write.target)
    if write.action == "merge":
        return [(write.individual, merge_record(value, into=target, worker=worker, rule=PERSON))]
    if write.action == "rename":
        merged = merge_record(value, into=target, worker=worker, rule=PERSON)
        held = latest.get(target)
        if held is not None and _renamed_from(held, value):
            return [(write.individual, merged)]  # the new id went out before a failed send
        if held is not None:
            return (
                "the shared gallery already holds the new name (not overwritten): workers "
                "keep reporting the old id; merge it there instead"
            )
        return [renamed_record(value, individual=target, worker=worker), (write.individual, merged)]
    raise ValueError(f"unknown gallery action {write.action!r}")


def _renamed_from(held: bytes, record: bytes) -> bool:
    """Whether ``held`` is a rename of the individual ``record`` (its enrolling views and
    source, not merged): the first half of a rename whose send stopped before the second."""
    new, old = json.loads(held), json.loads(record)
    return new.get("merged_into") is None and all(
        new.get(k) == old.get(k) for k in ("embeddings", "source", "first_seen_ns")
    )


def send_pending(
    db: sqlite3.Connection, gallery_log: GalleryLog, latest: dict[str, bytes | None]
) -> int:
    """Write the records of every pending decision to the gallery topic, each flushed, and
    clear each decision's flag once its records are; return how many records went.
    ``latest``: each individual's latest record, as read so far from this ``gallery_log``
    (read on to the topic's end here)."""
    for key, value in gallery_log.read_to_end():
        if "/" not in key:  # individuals, not their further views
            latest[key] = value
    writes = pending_writes(db)
    sent = 0
    for write in writes:
        try:
            records = gallery_records(write, latest)
        except (ValueError, KeyError, TypeError) as exc:  # a record workers skip as well
            records = f"the id's latest record in the topic cannot be used: {exc}"
        if isinstance(records, str):
            log.info(
                "fish_gallery_edit_not_sent action=%s individual=%s target=%s effect=%r",
                write.action,
                write.individual,
                write.target,
                records,
            )
        else:
            if write.action == "merge" and latest.get(str(write.target)) is None:
                log.info(
                    "fish_gallery_merge_target_not_shared individual=%s target=%s "
                    "effect='workers whose gallery holds the target (a known fish) report the "
                    "id as it; others keep the id'",
                    write.individual,
                    write.target,
                )
            for key, value in records:  # in order, each acknowledged before the next
                gallery_log.send(key, value)
                gallery_log.flush()
                latest[key] = value
                sent += 1
        _sent(db, write)  # each decision's flag once its records are acknowledged
    return sent


def _sent(db: sqlite3.Connection, write: GalleryWrite) -> None:
    """Clear the flag of one decision written to the topic (or with nothing to write)."""
    if write.edit_id is None:
        db.execute(
            "UPDATE fish_merge_reviews SET to_gallery = 0 "
            "WHERE individual = ? AND reviewed_at_ns = ?",
            (write.individual, write.at_ns),
        )
    else:
        db.execute("UPDATE fish_gallery_edits SET to_gallery = 0 WHERE id = ?", (write.edit_id,))


class GallerySender:
    """Sends pending decisions every ``every_s`` seconds on a daemon thread; ``open_log``
    opens the gallery topic (tried again, later and later, while the broker is away)."""

    def __init__(
        self, store_path: Path, open_log: Callable[[], GalleryLog], every_s: float = 1.0
    ) -> None:
        self.store_path, self.open_log, self.every_s = store_path, open_log, every_s
        self.gallery_log: GalleryLog | None = None
        self.latest: dict[str, bytes | None] = {}  # each individual's latest record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-gallery", daemon=True)

    def start(self) -> GallerySender:
        self._thread.start()
        return self

    def _run(self) -> None:
        db = sqlite3.connect(self.store_path, timeout=15.0, isolation_level=None)  # its own
        wait = self.every_s
        try:
            while not self._stop.wait(wait):
                try:
                    if not pending_writes(db):
                        continue
                    if self.gallery_log is None:
                        self.gallery_log = self.open_log()
                    sent = send_pending(db, self.gallery_log, self.latest)
                    log.info("fish_gallery_edits_sent records=%d", sent)
                    wait = self.every_s
                except (BrokerError, ConfigError, sqlite3.Error, OSError) as exc:  # tried again
                    wait = min(60.0, wait * 2)
                    log.warning("fish_gallery_edits_deferred retry_s=%.0f error=%r", wait, exc)
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread and close the gallery topic."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.gallery_log is not None:
            self.gallery_log.close()


__all__ = [
    "UNDO",
    "GallerySender",
    "GalleryWrite",
    "gallery_records",
    "pending_writes",
    "send_pending",
]
