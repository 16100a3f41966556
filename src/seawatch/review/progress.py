"""How far review has come, as InfluxDB points: per cruise and taxon, objects, validated,
dubious and the validated share; per cruise, otoliths flagged, confirmed and rejected. The
review station writes them every ``review.progress_interval_s`` through its own durable
outbox (beside the daemon's), so the dashboards show the validated share next to the counts.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from seawatch.contracts.points import line

log = logging.getLogger(__name__)
MEASUREMENT = "review"


def progress_lines(
    db: sqlite3.Connection,
    now_ns: int | None = None,
    known: set[tuple[str, str]] | None = None,
) -> list[str]:
    """The ``review`` points now: one per (cruise, taxon) of plankton, one per cruise of
    otoliths. ``known``: the (cruise, taxon) pairs written before; one that has no object
    left (its last one reassigned) gets a row of zeros, so a dashboard's last value drops to
    0 instead of keeping its old count. The set is updated to the pairs written now."""
    now = time.time_ns() if now_ns is None else now_ns
    lines = []
    rows = list(
        db.execute(
            "SELECT COALESCE(cruise, 'none'), label, COUNT(*), SUM(status = 'validated'), "
            "SUM(status = 'dubious') FROM objects GROUP BY 1, 2"
        )
    )
    if known is not None:
        present = {(cruise, taxon) for cruise, taxon, *_ in rows}
        rows += [(cruise, taxon, 0, 0, 0) for cruise, taxon in sorted(known - present)]
        known.clear()
        known.update(present)
    for cruise, taxon, total, validated, dubious in rows:
        fields = {
            "objects": total,
            "validated": validated,
            "dubious": dubious,
            "validated_share": round(validated / total, 6) if total else 0.0,
        }
        lines.append(
            line(MEASUREMENT, {"cruise": cruise, "taxon": taxon, "kind": "plankton"}, fields, now)
        )
    rows = db.execute(
        "SELECT f.cruise, COUNT(*), SUM(t.status = 'confirmed'), SUM(t.status = 'rejected') "
        "FROM otolith t JOIN frames f ON f.uid = t.frame_uid WHERE t.anomaly = 1 GROUP BY 1"
    )
    for cruise, flagged, confirmed, rejected in rows:
        fields = {
            "flagged": flagged,
            "confirmed": confirmed,
            "rejected": rejected,
            "reviewed_share": round((confirmed + rejected) / flagged, 6),
        }
        lines.append(line(MEASUREMENT, {"cruise": cruise, "kind": "otolith"}, fields, now))
    return [text for text in lines if text is not None]


class ProgressWriter:
    """Writes :func:`progress_lines` to a line sink every ``every_s`` seconds (a thread)."""

    def __init__(self, store_path, sink, every_s: float) -> None:
        self.store_path, self.sink, self.every_s = store_path, sink, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-progress", daemon=True)
        self._taxa: set[tuple[str, str]] = set()  # written before (their zero rows, when gone)

    def start(self) -> ProgressWriter:
        self._thread.start()
        return self

    def write_once(self) -> int:
        """Queue and flush one set of points; return how many."""
        db = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=15.0)
        try:
            lines = progress_lines(db, known=self._taxa)
        finally:
            db.close()
        self.sink.add_lines(lines)
        self.sink.flush()
        return len(lines)

    def _run(self) -> None:
        while True:
            try:
                self.write_once()
            except (sqlite3.Error, OSError) as exc:  # tried again at the next turn
                log.warning("review_progress_deferred error=%r", exc)
            if self._stop.wait(self.every_s):
                return

    def close(self) -> None:
        """Stop the thread and close the sink (its outbox keeps what InfluxDB lacks)."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.sink.close()


__all__ = ["MEASUREMENT", "ProgressWriter", "progress_lines"]
