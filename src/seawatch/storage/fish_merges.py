"""Merges of fish ids, kept in the local store beside the sightings they rename.

When two workers enrolled the same stranger at once (provisional twins), one id is merged
into the other in the shared gallery (:mod:`seawatch.models.fish.shared_gallery`); the
sightings already stored keep the id they were given. This table says which id each merged
one now is, so a reader can resolve stored sightings, and undoing a merge is one row.
A row per merged id (the latest word on it): ``survivor`` NULL once the merge was undone.
``rule`` says which decision merged it: :data:`TWIN` (two workers enrolled one stranger),
:data:`VIEWS` (a new provisional id's views matched an earlier one's; the open-set decider) or
:data:`PERSON` (a merge or rename made on the review station's fish page); NULL in rows
written before the column (it is added to older stores when opened). The review station lists
the automatic merges no person has looked at yet (:mod:`seawatch.review.merge_reviews`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from seawatch.contracts.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fish_merges (
    individual TEXT PRIMARY KEY,
    survivor TEXT,
    similarity REAL,
    merged_by TEXT NOT NULL,
    merged_at_ns INTEGER NOT NULL,
    rule TEXT
)
"""
TWIN, VIEWS, PERSON = "twin", "views", "person"  # the rules that merge (person: review station)


@dataclass(frozen=True, slots=True)
class FishMerge:
    """One merged id: ``individual`` is ``survivor`` (None: the merge was undone)."""

    individual: str
    survivor: str | None
    similarity: float | None
    merged_by: str
    merged_at_ns: int
    rule: str | None = None


class FishMerges:
    """The ``fish_merges`` table of the local store at ``path`` (opened at first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def record(
        self,
        individual: str,
        survivor: str | None,
        *,
        similarity: float | None,
        merged_by: str,
        rule: str | None = None,
    ) -> None:
        """Record (durably) that ``individual`` is now ``survivor`` (None: not merged), by
        ``merged_by`` (a worker) under ``rule`` (:data:`TWIN`, :data:`VIEWS`)."""
        try:
            db = self._connect()
            with db:
                db.execute(
                    "INSERT INTO fish_merges (individual, survivor, similarity, merged_by, "
                    "merged_at_ns, rule) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (individual) DO "
                    "UPDATE SET survivor = excluded.survivor, similarity = excluded.similarity, "
                    "merged_by = excluded.merged_by, merged_at_ns = excluded.merged_at_ns, "
                    "rule = excluded.rule",
                    (individual, survivor, similarity, merged_by, time.time_ns(), rule),
                )
        except sqlite3.Error as exc:
            msg = f"cannot record the merge of {individual!r} in {self.path}: {exc}"
            raise StorageError(msg) from exc

    def all(self) -> list[FishMerge]:
        """Every merged (or unmerged) id, oldest first."""
        rows = self._connect().execute(
            "SELECT individual, survivor, similarity, merged_by, merged_at_ns, rule "
            "FROM fish_merges ORDER BY merged_at_ns"
        )
        return [FishMerge(*row) for row in rows]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            ensure_merges_table(db)
            self._db = db
        return self._db


def ensure_merges_table(db: sqlite3.Connection) -> None:
    """Create the ``fish_merges`` table, or add the ``rule`` column to an older one."""
    db.execute(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(fish_merges)")}
    if "rule" not in columns:
        try:
            db.execute("ALTER TABLE fish_merges ADD COLUMN rule TEXT")
        except sqlite3.OperationalError as exc:  # another process added it meanwhile
            if "duplicate column" not in str(exc):
                raise


def read_merges(path: Path) -> dict[str, str]:
    """``merged id -> survivor`` from the store at ``path`` (empty when it has no merges)."""
    if not Path(path).is_file():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute("SELECT individual, survivor FROM fish_merges").fetchall()
        except sqlite3.OperationalError:  # no such table: nothing was ever merged here
            return {}
    return {individual: survivor for individual, survivor in rows if survivor}


__all__ = [
    "PERSON",
    "TWIN",
    "VIEWS",
    "FishMerge",
    "FishMerges",
    "ensure_merges_table",
    "read_merges",
]
