"""The automatic fish merges a person has not yet looked at, and their verdicts.

The daemon merges two provisional fish ids on its own (``fish_merges``: provisional twins of
two workers, or a new id whose views match an earlier one's; issue 28). Each merge waits here
until someone **confirms** it (it stands) or **undoes** it (the two ids are two fish: the
store's ``fish_merges`` row takes survivor NULL, as the system's own unmerge writes it).

An undo is also flagged ``to_gallery``: :mod:`seawatch.review.gallery_sender` writes the
unmerge to the shared gallery's topic, which every worker of the daemon applies. The merges a
person makes on the fish page (rule ``person``, written back by the workers) are not listed:
a person made them.

A verdict is a compare-and-set on the merge's review version, in one transaction with its
audit entry (``decisions``, subject ``fish-merge:<id>``), which the publisher also sends to the
``reviews`` topic (:mod:`seawatch.review.publish`). A merge the daemon makes again later (a new
``merged_at_ns``) is back in the queue.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from seawatch.review.decisions import (
    DecisionError,
    NoSuchSubject,
    Outcome,
    Stale,
    transaction,
    write_audit,
)
from seawatch.review.gallery_edits import ensure_edits_table
from seawatch.review.queries import Sighting
from seawatch.storage.fish_merges import PERSON, ensure_merges_table
from seawatch.storage.fish_sightings import SIGHTING_ID

MERGE_ACTIONS = ("confirm", "undo")
CONFIRMED, UNDONE = "confirmed", "undone"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fish_merge_reviews (
    individual TEXT PRIMARY KEY,
    merged_at_ns INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    version INTEGER NOT NULL,
    reviewed_by TEXT NOT NULL,
    reviewed_at_ns INTEGER NOT NULL,
    to_gallery INTEGER NOT NULL DEFAULT 0
)
"""


def ensure_review_tables(db: sqlite3.Connection) -> None:
    """The ``fish_merges`` table (a store the daemon never merged in has none), the
    verdicts' ``fish_merge_reviews`` and the fish page's ``fish_gallery_edits``."""
    ensure_merges_table(db)
    db.execute(_SCHEMA)
    ensure_edits_table(db)


def merge_subject(individual: str) -> str:
    """The audit subject of the merge of ``individual`` (the merged-away id)."""
    return f"fish-merge:{individual}"


@dataclass(frozen=True, slots=True)
class PendingMerge:
    """An automatic merge not yet reviewed: ``individual`` was merged into ``survivor``."""

    individual: str
    survivor: str
    similarity: float | None
    merged_by: str
    rule: str | None
    merged_at_ns: int
    version: int  # the review version a verdict must name

    @property
    def merged_at_us(self) -> int:
        """When it was merged, in microseconds (what a verdict names: a page's script holds
        it exactly, nanoseconds are past a JavaScript number's 2**53)."""
        return self.merged_at_ns // 1000

    @property
    def merged_at(self) -> datetime:
        return datetime.fromtimestamp(self.merged_at_ns / 1e9, UTC)


_PENDING = (
    "SELECT m.individual, m.survivor, m.similarity, m.merged_by, m.rule, m.merged_at_ns, "
    "COALESCE(r.version, 0) FROM fish_merges m "
    "LEFT JOIN fish_merge_reviews r ON r.individual = m.individual "
    "WHERE m.survivor IS NOT NULL AND (r.merged_at_ns IS NULL OR r.merged_at_ns != m.merged_at_ns)"
    f" AND m.rule IS NOT '{PERSON}'"
)


def pending_merges(db: sqlite3.Connection, limit: int = 100) -> list[PendingMerge]:
    """The merges no one has reviewed, newest first (none when the tables do not exist)."""
    try:
        rows = db.execute(f"{_PENDING} ORDER BY m.merged_at_ns DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.OperationalError as exc:  # a read-only view of a store without them
        if "no such table" in str(exc):
            return []
        raise
    return [PendingMerge(*row) for row in rows]


def stored_views(db: sqlite3.Connection, individual: str, limit: int = 6) -> list[Sighting]:
    """The newest stored sightings of ``individual`` (its views, as the fish page shows them)."""
    rows = db.execute(
        f"SELECT {SIGHTING_ID}, fi.similarity, fi.view, fi.version, f.captured_at_ns "
        "FROM fish fi JOIN frames f ON f.uid = fi.frame_uid WHERE fi.individual = ? "
        "ORDER BY f.captured_at_ns DESC, fi.idx LIMIT ?",
        (individual, limit),
    )
    return [
        Sighting(uid, sim, view, version, datetime.fromtimestamp(at / 1e9, UTC))
        for uid, sim, view, version, at in rows
    ]


def decide_merge(
    db: sqlite3.Connection,
    user: str,
    individual: str,
    merged_at_us: int,
    seen: int,
    action: str,
) -> Outcome:
    """Confirm or undo the merge of ``individual`` made at ``merged_at_us``, if its review
    version is still ``seen``; a merge reviewed, undone or made again since is refused."""
    if action not in MERGE_ACTIONS:
        raise DecisionError(f"unknown action {action!r}; confirm or undo")
    subject = merge_subject(individual)
    outcome = Outcome()
    with transaction(db):
        merge = db.execute(
            "SELECT survivor, similarity, merged_by, rule, merged_at_ns FROM fish_merges "
            "WHERE individual = ?",
            (individual,),
        ).fetchone()
        if merge is None:
            raise NoSuchSubject(f"no merge of fish {individual!r}")
        survivor, similarity, merged_by, rule, at_ns = merge
        review = db.execute(
            "SELECT version, reviewed_by, verdict FROM fish_merge_reviews WHERE individual = ?",
            (individual,),
        ).fetchone()
        version, by = (review[0], review[1]) if review else (0, None)
        if version != seen:
            outcome.stale.append(Stale(subject, seen, version, by))
            return outcome
        if at_ns // 1000 != merged_at_us or survivor is None:  # made again, or undone, by a worker
            outcome.stale.append(Stale(subject, seen, version, merged_by))
            return outcome
        now = time.time_ns()
        verdict = CONFIRMED if action == "confirm" else UNDONE
        db.execute(
            "INSERT INTO fish_merge_reviews VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(individual) DO UPDATE SET merged_at_ns = excluded.merged_at_ns, "
            "verdict = excluded.verdict, version = excluded.version, "
            "reviewed_by = excluded.reviewed_by, reviewed_at_ns = excluded.reviewed_at_ns, "
            "to_gallery = excluded.to_gallery",
            (individual, at_ns, verdict, version + 1, user, now, int(action == "undo")),
        )
        before = {
            "individual": individual,
            "survivor": survivor,
            "similarity": similarity,
            "merged_by": merged_by,
            "rule": rule,
            "merged_at_ns": at_ns,
            "version": version,
        }
        after = {"individual": individual, "survivor": survivor, "verdict": verdict}
        if action == "undo":  # as the system's own unmerge records it: survivor NULL
            db.execute(
                "UPDATE fish_merges SET survivor = NULL, merged_by = ?, merged_at_ns = ? "
                "WHERE individual = ?",
                (f"review:{user}", now, individual),
            )
            after |= {"survivor": None, "was_survivor": survivor}
        after["version"] = version + 1
        write_audit(db, subject, action, user, before, after)
        outcome.applied.append(subject)
    return outcome


__all__ = [
    "CONFIRMED",
    "MERGE_ACTIONS",
    "UNDONE",
    "PendingMerge",
    "decide_merge",
    "ensure_review_tables",
    "merge_subject",
    "pending_merges",
    "stored_views",
]
