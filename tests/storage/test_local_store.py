"""The SQLite store: durable flushes, idempotent replays."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from seawatch.contracts.errors import StorageError
from seawatch.storage.local_store import LocalStore, open_readonly
from tests.storage.factories import make_record


def test_flush_writes_frames_and_objects(tmp_path):
    store = LocalStore(tmp_path / "s.db")
    store.add([make_record(1_780_000_000_000_000_000), make_record(1_780_000_000_000_000_001)])
    store.flush()
    db = open_readonly(tmp_path / "s.db")
    assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == 6
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()


def test_a_replayed_frame_replaces_its_rows(tmp_path):
    store = LocalStore(tmp_path / "s.db")
    store.add([make_record(taxa=("copepod", "copepod", "detritus"), offset=1)])
    store.flush()
    store.add([make_record(taxa=("bubble",), offset=99)])  # same frame, re-processed
    store.close()
    db = open_readonly(tmp_path / "s.db")
    assert db.execute('SELECT COUNT(*), MAX("offset") FROM frames').fetchone() == (1, 99)
    assert db.execute("SELECT taxon FROM objects").fetchall() == [("bubble",)]


def test_unusable_path_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match=r"storage\.local\.path"):
        LocalStore(blocker / "sub" / "s.db")
    with pytest.raises(StorageError, match="run the daemon first"):
        open_readonly(tmp_path / "missing.db")


def test_morphometrics_are_stored_in_pixels_and_micrometres(tmp_path):
    store = LocalStore(tmp_path / "s.db")
    store.add([make_record(taxa=("copepod",), pixel_size_um=10.0)])
    store.add([make_record(1_780_000_000_000_000_009, taxa=("bubble",), pixel_size_um=None)])
    store.close()
    db = open_readonly(tmp_path / "s.db")
    rows = db.execute(
        "SELECT taxon, area_px, area_um2, major_um, minor_um, feret_um, esd_px, esd_um,"
        " biovolume_um3 FROM objects ORDER BY taxon"
    ).fetchall()
    bubble, copepod = rows
    assert bubble[2:6] == (None, None, None, None) and bubble[7] is None  # no pixel size
    taxon, area_px, area_um2, major_um, minor_um, feret_um, esd_px, esd_um, volume = copepod
    assert taxon == "copepod"
    assert area_um2 == pytest.approx(area_px * 100.0)
    assert (major_um, minor_um, feret_um) == pytest.approx((120.0, 100.0, 130.0))
    assert esd_um == pytest.approx(esd_px * 10.0)
    assert volume == pytest.approx(3.141592653589793 / 6 * esd_um**3)


def _reader_holding_a_lock(path):
    """A read-only connection inside a transaction: it holds a shared lock on ``path``."""
    sqlite3.connect(path).close()  # the file exists, still in rollback-journal mode
    reader = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    return reader


def test_opening_waits_out_a_reader_that_locks_the_new_file(tmp_path):
    path = tmp_path / "s.db"
    reader = _reader_holding_a_lock(path)
    threading.Timer(0.3, lambda: reader.execute("COMMIT")).start()
    store = LocalStore(path, lock_wait_s=20)  # "database is locked" until the reader ends
    store.add([make_record(1_780_000_000_000_000_000)])
    store.close()
    reader.close()
    assert open_readonly(path).execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 1


def test_a_lock_that_lasts_is_a_clear_storage_error(tmp_path):
    path = tmp_path / "s.db"
    reader = _reader_holding_a_lock(path)
    try:
        with pytest.raises(StorageError, match=r"locked; check storage\.local\.path"):
            LocalStore(path, lock_wait_s=0.2)
    finally:
        reader.close()
