"""The store's ``fish`` table: one row per fish sighting, keyed by frame uid + index.

A crop sent alone is one sighting (index 0); a whole tank frame
(``tasks.fish.options.whole_frames``) holds one per fish, left to right. The key makes a
replayed frame overwrite its own rows (never add to them) and keep what people decided
(the review columns). Stores from before sightings had an index (one row per frame, keyed
by frame uid) are rebuilt once when opened: their rows become index 0.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from seawatch.contracts.records import FrameRecord

FISH_TABLE = """
CREATE TABLE IF NOT EXISTS fish (
    frame_uid TEXT NOT NULL REFERENCES frames (uid) ON DELETE CASCADE,
    idx INTEGER NOT NULL DEFAULT 0,
    individual TEXT NOT NULL, similarity REAL NOT NULL,
    new_individual INTEGER NOT NULL, provisional INTEGER NOT NULL,
    bbox_x INTEGER, bbox_y INTEGER, bbox_w INTEGER, bbox_h INTEGER,
    PRIMARY KEY (frame_uid, idx)
);
"""
FISH_INDEX = "CREATE INDEX IF NOT EXISTS fish_individual ON fish (individual)"
# What people decide lives beside what the model said (added to older stores by ALTER).
FISH_REVIEW_COLUMNS = (
    ("view", "TEXT"),
    ("predicted_individual", "TEXT"),
    ("status", "TEXT NOT NULL DEFAULT 'predicted'"),
    ("version", "INTEGER NOT NULL DEFAULT 0"),
    ("reviewed_by", "TEXT"),
    ("reviewed_at_ns", "INTEGER"),
)
_COLUMNS = (
    "frame_uid", "idx", "individual", "similarity", "new_individual", "provisional",
    "bbox_x", "bbox_y", "bbox_w", "bbox_h", "view", "predicted_individual",
)  # fmt: skip
_MODEL_COLUMNS = [c for c in _COLUMNS if c not in ("frame_uid", "idx")]
# A reviewed sighting keeps the individual a person gave it; the model's answer is always
# kept in predicted_individual.
_KEEP = {
    "individual": "CASE WHEN fish.version = 0 THEN excluded.individual ELSE fish.individual END"
}
FISH_SQL = (
    f"INSERT INTO fish ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (frame_uid, idx) DO UPDATE SET "
    + ", ".join(f"{c} = {_KEEP.get(c, f'excluded.{c}')}" for c in _MODEL_COLUMNS)
)
# A replayed fish frame keeps only the sightings it still has (a crop frame: its one).
FISH_GONE_SQL = (
    "DELETE FROM fish WHERE frame_uid = ? AND idx NOT IN (SELECT value FROM json_each(?))"
)
# The id a page and a split name a sighting by: the frame uid, ``/k`` for a whole frame's
# later fish (as the gallery names the sighting's source).
SIGHTING_ID = "(CASE WHEN idx = 0 THEN frame_uid ELSE frame_uid || '/' || idx END)"


def _columns(db: sqlite3.Connection) -> list[str]:
    return [row[1] for row in db.execute("PRAGMA table_info(fish)")]


def ensure_fish_table(db: sqlite3.Connection) -> None:
    """Create the table (or bring an older store's up to date: review columns, sighting
    index), and its index."""
    db.executescript(FISH_TABLE)
    have = set(_columns(db))
    for name, kind in FISH_REVIEW_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE fish ADD COLUMN {name} {kind}")
    if "idx" not in have:
        _rebuild_with_index(db)
    db.execute(FISH_INDEX)
    db.execute(
        "UPDATE fish SET predicted_individual = individual WHERE predicted_individual IS NULL"
    )


def _rebuild_with_index(db: sqlite3.Connection) -> None:
    """One row per frame (keyed by uid) -> one row per sighting: every old row is index 0.

    SQLite cannot change a primary key in place: the table is copied, in one transaction
    that checks again inside it (two workers may open an old store at once)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        old = _columns(db)
        if "idx" not in old:
            db.execute("ALTER TABLE fish RENAME TO fish_one_per_frame")
            db.execute("DROP INDEX IF EXISTS fish_individual")
            db.execute(FISH_TABLE)
            for name, kind in FISH_REVIEW_COLUMNS:
                db.execute(f"ALTER TABLE fish ADD COLUMN {name} {kind}")
            names = ", ".join(old)
            db.execute(f"INSERT INTO fish ({names}) SELECT {names} FROM fish_one_per_frame")
            db.execute("DROP TABLE fish_one_per_frame")
        db.execute("COMMIT")
    except sqlite3.Error:
        db.execute("ROLLBACK")
        raise


def fish_rows(records: Sequence[FrameRecord]) -> list[tuple]:
    """One row per sighting of every record (``predicted_individual``: what the model said)."""
    rows = []
    for r in records:
        for k, f in enumerate(r.fish_sightings):
            box = f.bbox if f.bbox is not None else (None, None, None, None)
            rows.append(
                (
                    r.uid,
                    k,
                    f.individual,
                    f.similarity,
                    int(f.new_individual),
                    int(f.provisional),
                    *box,
                    f.view,
                    f.individual,
                )
            )
    return rows


def kept_sightings(records: Sequence[FrameRecord]) -> list[tuple[str, str]]:
    """``(frame uid, JSON list of its sighting indexes)`` of every record, for
    :data:`FISH_GONE_SQL` (a frame of another task has none: one index seek finds nothing)."""
    return [(r.uid, json.dumps(list(range(len(r.fish_sightings))))) for r in records]


__all__ = [
    "FISH_GONE_SQL",
    "FISH_SQL",
    "SIGHTING_ID",
    "ensure_fish_table",
    "fish_rows",
    "kept_sightings",
]
