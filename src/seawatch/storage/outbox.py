"""The durable outbox: line protocol waiting for InfluxDB, in a SQLite file in WAL mode.

The pipeline appends each batch's lines (one transaction, ``synchronous=FULL``: on disk when
:meth:`Outbox.append` returns) before it commits the batch's offsets; the drainer reads the
oldest chunks, writes them to InfluxDB and deletes them only after the server acknowledged.
Lines the server refuses for good (HTTP 4xx other than 429) are moved to a ``rejected`` table
with the reason, never dropped. The file survives restarts: what was not drained is sent by
the next run.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    line_count INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    rejected_at REAL NOT NULL,
    line_count INTEGER NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One appended group of lines, as stored."""

    id: int
    line_count: int
    body: str


class Outbox:
    """A FIFO of line-protocol chunks on disk, safe to use from two threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        row = self._db.execute("SELECT COALESCE(SUM(line_count), 0) FROM pending").fetchone()
        self._backlog = int(row[0])

    @property
    def backlog(self) -> int:
        """Lines waiting to be acknowledged by the database."""
        with self._lock:
            return self._backlog

    def append(self, lines: list[str], chunk_lines: int = 5000) -> None:
        """Store ``lines`` durably (in chunks of at most ``chunk_lines``), in one transaction."""
        if not lines:
            return
        now = time.time()
        rows = [
            (now, len(part), "\n".join(part))
            for part in (lines[i : i + chunk_lines] for i in range(0, len(lines), chunk_lines))
        ]
        with self._lock:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO pending (created_at, line_count, body) VALUES (?, ?, ?)", rows
                )
            self._backlog += len(lines)
            self._changed.notify_all()

    def oldest(self, max_lines: int) -> list[Chunk]:
        """The oldest chunks, at least one and otherwise up to ``max_lines`` lines in all."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT id, line_count, body FROM pending ORDER BY id LIMIT 64"
            )
            chunks: list[Chunk] = []
            total = 0
            for row in cursor:
                if chunks and total + row[1] > max_lines:
                    break
                chunks.append(Chunk(*row))
                total += row[1]
            return chunks

    def remove(self, chunks: list[Chunk]) -> None:
        """Delete chunks the database acknowledged."""
        with self._lock:
            with self._transaction():
                self._db.executemany("DELETE FROM pending WHERE id = ?", [(c.id,) for c in chunks])
            self._backlog -= sum(c.line_count for c in chunks)
            self._changed.notify_all()

    def reject(self, chunks: list[Chunk], reason: str) -> None:
        """Move chunks the database refused for good to the ``rejected`` table."""
        now = time.time()
        with self._lock:
            with self._transaction():
                for chunk in chunks:
                    self._db.execute(
                        "INSERT INTO rejected (id, created_at, rejected_at, line_count, reason, "
                        "body) SELECT id, created_at, ?, line_count, ?, body FROM pending "
                        "WHERE id = ?",
                        (now, reason, chunk.id),
                    )
                    self._db.execute("DELETE FROM pending WHERE id = ?", (chunk.id,))
            self._backlog -= sum(c.line_count for c in chunks)
            self._changed.notify_all()

    def rejected_lines(self) -> int:
        """Lines the database refused for good (kept in the ``rejected`` table)."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(line_count), 0) FROM rejected").fetchone()
            return int(row[0])

    def wait_for_change(self, timeout_s: float) -> None:
        """Block until lines are appended or removed, or ``timeout_s`` passes."""
        with self._changed:
            self._changed.wait(timeout_s)

    def close(self) -> None:
        """Close the file (what is pending stays for the next run)."""
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


__all__ = ["Chunk", "Outbox"]
