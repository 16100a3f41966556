"""The crop store: every kept crop and fish view, content-addressed, in a SQLite file beside
the local store.

A crop is named by the SHA-256 of its PNG bytes (:mod:`seawatch.contracts.crops`), so a
replayed frame adds nothing. :meth:`CropStore.put` commits with ``synchronous=FULL`` before
it returns: the pipeline stores crops before the records that name them and commits offsets
after both, so a record never names a crop that a crash lost.

Retention (:meth:`CropStore.prune`) drops crops older than the age limit, then the oldest
until the bytes fit, never one a caller says to keep (the crops of reviewed objects); a
crop's thumbnail goes with it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seawatch.contracts.crops import Crop
from seawatch.contracts.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crops (
    digest TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    stored_at_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS crops_age_bytes ON crops (stored_at_ns, bytes);
DROP INDEX IF EXISTS crops_age;
CREATE TABLE IF NOT EXISTS thumbs (
    digest TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""
# thumbs: the grid-sized JPEG of each crop larger than a thumbnail, in its own table so a
# grid page reads ~1.6 KB rows and not the crops' overflow pages (a 200-crop first view read
# 2.2 MB in ~1,000 random reads; issue 25's page-load target). Stores from before it have
# no thumbnails: the crop itself is served.
# crops_age_bytes covers SUM(bytes), which retention computes every PRUNE_EVERY_S: without
# it the sum reads every crop (``bytes`` lies after the PNG in the row): 9.5 s a minute at a
# million crops (9.4 GB), in the daemon's put().
PRUNE_EVERY_S = 60.0  # how often put() applies the retention policy


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass of the retention policy removed and what is left."""

    removed: int
    removed_bytes: int
    kept_bytes: int


class CropStore:
    """Content-addressed crops in one SQLite file (WAL), written by the daemon, read by the
    review station and the exports."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        keep: Callable[[], Collection[str]] | None = None,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.keep = keep  # digests retention must not drop (reviewed objects)
        self._last_prune = time.monotonic()
        try:
            if readonly:
                if not self.path.is_file():
                    raise StorageError(f"no crop store at {self.path}; run the daemon first")
                uri = f"file:{self.path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    self.path, timeout=10.0, isolation_level=None, check_same_thread=False
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            names = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            self._has_thumbs = ("thumbs",) in names.fetchall()  # read-only, older store
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open the crop store {self.path}: {exc}; check storage.local.crops.path"
            raise StorageError(msg) from exc

    def put(self, crops: Sequence[Crop], *, now_ns: int | None = None) -> None:
        """Store crops durably (one transaction); a crop already there is left as it is."""
        if crops:
            now = time.time_ns() if now_ns is None else now_ns
            rows = [(c.digest, c.png, len(c.png), now) for c in crops]
            thumbs = [(c.digest, c.thumb) for c in crops if c.thumb]
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR IGNORE INTO crops VALUES (?,?,?,?)", rows)
                self._db.executemany("INSERT OR IGNORE INTO thumbs VALUES (?,?)", thumbs)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"crop store {self.path} write failed: {exc}") from exc
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self.prune()

    def get(self, digest: str) -> bytes | None:
        """A crop's PNG bytes, or None when it is not (or no longer) kept."""
        row = self._db.execute("SELECT data FROM crops WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    def thumb(self, digest: str) -> bytes | None:
        """A crop's grid thumbnail (JPEG), or the crop itself (PNG) when it has none (small
        crops, stores from before thumbnails); None when neither is kept."""
        row = None
        if self._has_thumbs:
            sql = "SELECT data FROM thumbs WHERE digest = ?"
            row = self._db.execute(sql, (digest,)).fetchone()
        return bytes(row[0]) if row is not None else self.get(digest)

    def thumbs(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The thumbnails of ``digests`` in one query (the crop itself where a crop has no
        thumbnail); digests with neither are left out."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, bytes] = {}
        if self._has_thumbs:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT digest, data FROM thumbs WHERE digest IN ({marks})"
                found.update((d, bytes(b)) for d, b in self._db.execute(sql, chunk))
        rest = [d for d in wanted if d not in found]
        return found | (self.many(rest) if rest else {})

    def many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The kept crops among ``digests``."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT digest, data FROM crops WHERE digest IN ({marks})"
            found.update((d, bytes(b)) for d, b in self._db.execute(sql, chunk))
        return found

    def total_bytes(self) -> int:
        """Bytes of crop data kept."""
        return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM crops").fetchone()[0])

    def prune(self, *, now_ns: int | None = None) -> Pruned:
        """Apply the retention policy once: age first, then size, oldest first; kept digests
        (``keep()``) stay whatever their age."""
        self._last_prune = time.monotonic()
        if self.max_bytes is None and self.max_age_s is None:
            return Pruned(0, 0, self.total_bytes())
        now = time.time_ns() if now_ns is None else now_ns
        keep = set(self.keep()) if self.keep is not None else set()
        doomed: list[tuple[str, int]] = []
        if self.max_age_s is not None:
            cutoff = now - int(self.max_age_s * 1e9)
            old = self._db.execute(
                "SELECT digest, bytes FROM crops WHERE stored_at_ns < ?", (cutoff,)
            ).fetchall()
            doomed += [(d, b) for d, b in old if d not in keep]
        total = self.total_bytes() - sum(b for _, b in doomed)
        if self.max_bytes is not None and total > self.max_bytes:
            gone = {d for d, _ in doomed}
            rows = self._db.execute("SELECT digest, bytes FROM crops ORDER BY stored_at_ns")
            for digest, size in rows:
                if total <= self.max_bytes:
                    break
                if digest in keep or digest in gone:
                    continue
                doomed.append((digest, size))
                total -= size
        if doomed:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                gone_rows = [(d,) for d, _ in doomed]
                self._db.executemany("DELETE FROM crops WHERE digest = ?", gone_rows)
                self._db.executemany("DELETE FROM thumbs WHERE digest = ?", gone_rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"crop store {self.path} retention failed: {exc}") from exc
        return Pruned(len(doomed), sum(b for _, b in doomed), total)

    def close(self) -> None:
        """Close the file."""
        self._db.close()


__all__ = ["PRUNE_EVERY_S", "CropStore", "Pruned"]
