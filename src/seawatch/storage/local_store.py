"""The embedded store: every frame and object record in one SQLite file (WAL mode).

Rows are keyed by the frame's uid, so a replayed frame replaces its own rows. A flush is a
committed transaction with ``synchronous=FULL``: when :meth:`LocalStore.flush` returns, the
records survive a crash of the daemon or of the machine.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from seawatch.contracts.errors import StorageError
from seawatch.contracts.ranking import wrongness_of
from seawatch.contracts.records import FrameRecord
from seawatch.storage.fish_sightings import (
    FISH_GONE_SQL,
    FISH_SQL,
    ensure_fish_table,
    fish_rows,
    kept_sightings,
)

_FRAME_COLUMNS = (
    "uid", "instrument", "task", "captured_at_ns", "frame_kind", "cruise", "station",
    "sample_id", "lat", "lon", "depth_m", "volume_ml", "pixel_size_um", "specimen_id",
    "topic", "partition", '"offset"', "model", "model_version", "n_objects",
    "decode_ms", "infer_ms", "latency_ms", "stored_at_ns", "segmentation_quality",
)  # fmt: skip
_OBJECT_COLUMNS = (
    "frame_uid", "idx", "taxon", "confidence", "top_k",
    "bbox_x", "bbox_y", "bbox_w", "bbox_h",
    "area_px", "major_px", "minor_px", "feret_px", "esd_px",
    "area_um2", "major_um", "minor_um", "feret_um", "esd_um", "biovolume_um3",
    "crop", "cruise", "station", "instrument", "captured_at_ns", "wrongness", "label",
)  # fmt: skip
# What people decide (the review station) lives beside what the models said: a replayed
# frame updates the model's columns and keeps the review columns (label, status, version).
_REVIEW_COLUMNS = {
    # not a review column: the segmentation model's score of the frame (ingest.segmentation
    # method: model), added to stores from before it like the review columns
    "frames": (("segmentation_quality", "REAL"),),
    "objects": (
        ("crop", "TEXT"),
        ("cruise", "TEXT"),
        ("station", "TEXT"),
        ("instrument", "TEXT"),
        ("captured_at_ns", "INTEGER"),
        ("wrongness", "REAL"),
        ("label", "TEXT"),
        ("status", "TEXT NOT NULL DEFAULT 'predicted'"),
        ("version", "INTEGER NOT NULL DEFAULT 0"),
        ("reviewed_by", "TEXT"),
        ("reviewed_at_ns", "INTEGER"),
    ),
    "otolith": (
        ("status", "TEXT NOT NULL DEFAULT 'predicted'"),
        ("anomaly_type", "TEXT"),
        ("version", "INTEGER NOT NULL DEFAULT 0"),
        ("reviewed_by", "TEXT"),
        ("reviewed_at_ns", "INTEGER"),
    ),
    # fish: storage.fish_sightings (one row per sighting, with its own migration)
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    uid TEXT PRIMARY KEY,
    instrument TEXT NOT NULL,
    task TEXT NOT NULL,
    captured_at_ns INTEGER NOT NULL,
    frame_kind TEXT NOT NULL,
    cruise TEXT NOT NULL,
    station TEXT NOT NULL,
    sample_id TEXT,
    lat REAL, lon REAL, depth_m REAL, volume_ml REAL, pixel_size_um REAL,
    specimen_id TEXT,
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    model TEXT NOT NULL, model_version TEXT NOT NULL,
    n_objects INTEGER NOT NULL,
    decode_ms REAL NOT NULL, infer_ms REAL NOT NULL, latency_ms REAL NOT NULL,
    stored_at_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_time ON frames (captured_at_ns);
CREATE TABLE IF NOT EXISTS objects (
    frame_uid TEXT NOT NULL REFERENCES frames (uid) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    taxon TEXT NOT NULL,
    confidence REAL NOT NULL,
    top_k TEXT NOT NULL,
    bbox_x INTEGER NOT NULL, bbox_y INTEGER NOT NULL,
    bbox_w INTEGER NOT NULL, bbox_h INTEGER NOT NULL,
    area_px REAL NOT NULL, major_px REAL NOT NULL, minor_px REAL NOT NULL, feret_px REAL NOT NULL,
    esd_px REAL NOT NULL,
    area_um2 REAL, major_um REAL, minor_um REAL, feret_um REAL, esd_um REAL, biovolume_um3 REAL,
    PRIMARY KEY (frame_uid, idx)
);
CREATE INDEX IF NOT EXISTS objects_taxon ON objects (taxon);
CREATE TABLE IF NOT EXISTS otolith (
    frame_uid TEXT PRIMARY KEY REFERENCES frames (uid) ON DELETE CASCADE,
    specimen_id TEXT,
    score REAL NOT NULL, anomaly INTEGER NOT NULL, threshold REAL NOT NULL,
    thumbnail TEXT, heatmap TEXT
);
CREATE TABLE IF NOT EXISTS task_outputs (
    frame_uid TEXT NOT NULL REFERENCES frames (uid) ON DELETE CASCADE,
    name TEXT NOT NULL, value,
    PRIMARY KEY (frame_uid, name)
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    user TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_subject ON decisions (subject);
CREATE INDEX IF NOT EXISTS decisions_unpublished ON decisions (published) WHERE published = 0;
"""
# The review station's queries: a cruise and taxon page by confidence, the "most likely
# wrong" queue, time ranges, and the filter lists (the distinct cruises, stations and
# instruments, one index seek per value; created after the columns exist, for old stores too).
_REVIEW_INDEXES = """
CREATE INDEX IF NOT EXISTS objects_cruise_label ON objects (cruise, label, confidence);
CREATE INDEX IF NOT EXISTS objects_label ON objects (label, confidence);
CREATE INDEX IF NOT EXISTS objects_wrong ON objects (status, wrongness);
CREATE INDEX IF NOT EXISTS objects_crop ON objects (crop) WHERE status != 'predicted';
CREATE INDEX IF NOT EXISTS frames_cruise ON frames (cruise);
CREATE INDEX IF NOT EXISTS frames_station ON frames (station);
CREATE INDEX IF NOT EXISTS frames_instrument ON frames (instrument);
"""


def _upsert(
    table: str, columns: Sequence[str], key: str, keep: dict[str, str] | None = None
) -> str:
    """INSERT ... ON CONFLICT DO UPDATE of every column but the key; ``keep`` maps a column
    to the SQL that sets it instead of the new value (review columns a replay must keep)."""
    keys, keep = key.split(", "), keep or {}
    names, marks = ", ".join(columns), ", ".join("?" * len(columns))
    updates = ", ".join(f"{c} = {keep.get(c, f'excluded.{c}')}" for c in columns if c not in keys)
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"
    return f"{insert} ON CONFLICT ({key}) DO UPDATE SET {updates}"


_FRAME_SQL = _upsert("frames", _FRAME_COLUMNS, "uid")
_OBJECT_SQL = _upsert(
    "objects",
    _OBJECT_COLUMNS,
    "frame_uid, idx",
    {"label": "CASE WHEN objects.status = 'predicted' THEN excluded.label ELSE objects.label END"},
)
_OBJECTS_GONE_SQL = (
    "DELETE FROM objects WHERE frame_uid = ? AND idx NOT IN (SELECT value FROM json_each(?))"
)
_OTOLITH_SQL = _upsert(
    "otolith",
    ("frame_uid", "specimen_id", "score", "anomaly", "threshold", "thumbnail", "heatmap"),
    "frame_uid",
)
_OUTPUT_SQL = "INSERT OR REPLACE INTO task_outputs VALUES (?,?,?)"  # plug-in tasks' fields


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the tables, add the review columns a store from an older release lacks, and
    create the review station's indexes."""
    db.executescript(_SCHEMA)
    for table, columns in _REVIEW_COLUMNS.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    ensure_fish_table(db)
    db.executescript(_REVIEW_INDEXES)


def _frame_row(record: FrameRecord, stored_at_ns: int) -> tuple:
    m, ref = record.meta, record.ref
    return (
        m.uid,
        m.instrument,
        m.task,
        m.captured_at_ns,
        m.frame_kind.value,
        m.cruise,
        m.station,
        m.sample_id,
        m.lat,
        m.lon,
        m.depth_m,
        m.volume_ml,
        m.pixel_size_um,
        m.specimen_id,
        ref.topic,
        ref.partition,
        ref.offset,
        record.model,
        record.model_version,
        len(record.objects),
        record.decode_ms,
        record.infer_ms,
        record.latency_ms,
        stored_at_ns,
        None if record.quality is None else record.quality.segmentation,
    )


def _object_rows(record: FrameRecord) -> list[tuple]:
    m = record.meta
    return [
        (
            record.uid,
            o.index,
            o.taxon,
            o.confidence,
            json.dumps(o.top_k),
            *o.bbox,
            o.morph.area_px,
            o.morph.major_px,
            o.morph.minor_px,
            o.morph.feret_px,
            o.morph.esd_px,
            o.morph.area_um2,
            o.morph.major_um,
            o.morph.minor_um,
            o.morph.feret_um,
            o.morph.esd_um,
            o.morph.biovolume_um3,
            o.crop,
            m.cruise,
            m.station,
            m.instrument,
            m.captured_at_ns,
            o.wrongness if o.wrongness is not None else wrongness_of(o.confidence, o.top_k),
            o.taxon,
        )
        for o in record.objects
    ]


def _output_rows(records: Sequence[FrameRecord]) -> list[tuple]:
    return [(r.uid, name, value) for r in records for name, value in r.fields]


def _otolith_rows(records: Sequence[FrameRecord]) -> list[tuple]:
    return [
        (r.uid, o.specimen_id, o.score, int(o.anomaly), o.threshold, o.thumbnail, o.heatmap)
        for r in records
        if (o := r.otolith) is not None
    ]


OPEN_LOCK_WAIT_S = 10.0  # how long opening waits out readers locking a brand-new store


class LocalStore:
    """A :class:`~seawatch.storage.sink.Sink` writing to a SQLite file."""

    name = "local"

    def __init__(self, path: Path, *, lock_wait_s: float = OPEN_LOCK_WAIT_S) -> None:
        self.path = Path(path)
        deadline = time.monotonic() + lock_wait_s
        while True:
            db = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path,
                    timeout=min(5.0, lock_wait_s),
                    isolation_level=None,
                    check_same_thread=False,
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
                ensure_schema(db)
                self._db = db
                break
            except (OSError, sqlite3.Error) as exc:
                if db is not None:  # a half-opened connection is not kept, whatever failed
                    db.close()
                # Switching a new file to WAL needs it to itself: a reader looking in at that
                # moment (a report, a health probe, a watching test) can make it fail with
                # "locked". Try again until the deadline; a lasting lock is an error.
                locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if not locked or time.monotonic() > deadline:
                    raise self._error(exc) from exc
                time.sleep(0.05)
        self._pending: list[FrameRecord] = []

    def _error(self, exc: Exception) -> StorageError:
        msg = f"cannot open the local store {self.path}: {exc}; check storage.local.path"
        return StorageError(msg)

    def add(self, records: Sequence[FrameRecord]) -> None:
        """Queue records for the next flush."""
        self._pending.extend(records)

    def flush(self) -> None:
        """Write the queued records in one durable transaction."""
        if not self._pending:
            return
        now = time.time_ns()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_FRAME_SQL, [_frame_row(r, now) for r in self._pending])
            # A replayed frame keeps the objects it still has (and their reviews).
            kept = [(r.uid, json.dumps([o.index for o in r.objects])) for r in self._pending]
            self._db.executemany(_OBJECTS_GONE_SQL, kept)
            self._db.executemany(
                _OBJECT_SQL, [row for r in self._pending for row in _object_rows(r)]
            )
            self._db.executemany(_OTOLITH_SQL, _otolith_rows(self._pending))
            # one row per fish sighting; a replay keeps only the sightings it still has
            self._db.executemany(FISH_GONE_SQL, kept_sightings(self._pending))
            self._db.executemany(FISH_SQL, fish_rows(self._pending))
            self._db.executemany(_OUTPUT_SQL, _output_rows(self._pending))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StorageError(f"local store {self.path} write failed: {exc}") from exc
        finally:
            self._pending.clear()

    def saturated(self) -> bool:
        """Never: a local write either succeeds at flush or raises."""
        return False

    def close(self) -> None:
        """Flush what is queued and close the file."""
        try:
            self.flush()
        finally:
            self._db.close()


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open a store for reading (reports, tests, the demo summary)."""
    if not Path(path).is_file():
        raise StorageError(f"no local store at {path}; run the daemon first")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def stored_frame_count(path: Path) -> int:
    """Frames in the store at ``path``; 0 before the daemon has created it or its schema
    (for watching a running daemon: tests, benchmarks)."""
    if not Path(path).is_file():
        return 0
    try:
        db = open_readonly(path)
        try:
            return db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def reviewed_crops(path: Path) -> set[str]:
    """Digests of the crops and views of everything a person has reviewed (retention keeps
    them); empty before the store exists."""
    if not Path(path).is_file():
        return set()
    db = open_readonly(path)
    try:
        rows = db.execute(
            "SELECT crop FROM objects WHERE status != 'predicted' AND crop IS NOT NULL "
            "UNION SELECT view FROM fish WHERE status != 'predicted' AND view IS NOT NULL"
        )
        return {digest for (digest,) in rows}
    finally:
        db.close()


__all__ = ["LocalStore", "ensure_schema", "open_readonly", "reviewed_crops", "stored_frame_count"]
