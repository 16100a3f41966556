"""Every write of a frame's row in the local store, journalled by SQLite triggers.

The store keys frames by uid and upserts them, so its tables can never show a frame written
twice: a replay, or a bug that stores a batch twice, overwrites its own row. A test that must
see such writes installs this journal before the daemon starts: AFTER INSERT and AFTER UPDATE
triggers on ``frames`` append (uid, op) to ``write_journal`` inside the write's own
transaction, so a flush rolled back (a process killed mid-write) leaves no journal row either.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from seawatch.storage.local_store import LocalStore

_JOURNAL = """
CREATE TABLE IF NOT EXISTS write_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    op TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_frame_insert AFTER INSERT ON frames
BEGIN
    INSERT INTO write_journal (uid, op) VALUES (NEW.uid, 'insert');
END;
CREATE TRIGGER IF NOT EXISTS journal_frame_update AFTER UPDATE ON frames
BEGIN
    INSERT INTO write_journal (uid, op) VALUES (NEW.uid, 'update');
END;
"""


def install_write_journal(store: Path) -> None:
    """Create the store (the daemon's own schema) and its write journal at ``store``."""
    LocalStore(Path(store)).close()
    with sqlite3.connect(store) as db:
        db.executescript(_JOURNAL)


def frame_writes(store: Path) -> Counter[str]:
    """How many times each frame's row was written (inserted or overwritten)."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return Counter(uid for (uid,) in db.execute("SELECT uid FROM write_journal"))


__all__ = ["frame_writes", "install_write_journal"]
