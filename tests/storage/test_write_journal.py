"""The write journal sees what the store's upserts hide: a frame written twice."""

from __future__ import annotations

import sqlite3

import pytest

from seawatch.contracts.errors import StorageError
from seawatch.storage.local_store import LocalStore
from tests.storage.factories import make_record
from tests.write_journal import frame_writes, install_write_journal


def test_the_journal_counts_every_write_of_a_frame_the_table_keeps_once(tmp_path) -> None:
    store = tmp_path / "store.db"
    install_write_journal(store)
    first, second = make_record(1_780_000_000_000_000_000), make_record(1_780_000_001_000_000_000)
    local = LocalStore(store)
    try:
        local.add([first, second])
        local.flush()
        local.add([first])  # a replay: the row is overwritten, the table still has one
        local.flush()
    finally:
        local.close()
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 2
    assert frame_writes(store) == {first.uid: 2, second.uid: 1}


def test_a_rolled_back_write_leaves_no_journal_row(tmp_path) -> None:
    """A flush cut short (a killed process) rolls its journal rows back with it."""
    store = tmp_path / "store.db"
    install_write_journal(store)
    with sqlite3.connect(store) as db:  # the objects, written after the frame, fail
        db.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON objects BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
    local = LocalStore(store)
    try:
        local.add([make_record()])
        with pytest.raises(StorageError):
            local.flush()
    finally:
        local.close()
    assert frame_writes(store) == {}
