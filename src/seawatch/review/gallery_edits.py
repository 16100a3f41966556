"""A person's renames and merges on the fish page, kept for the shared fish gallery.

The fish page (:func:`seawatch.review.decisions.decide_fish`) changes the store's ``fish``
rows; a **merge** (A into B) or a **rename** (A to N) also changes what later sightings of A
are reported as, which the daemon's workers learn only from the gallery topic. So each is
also written here, in the decision's own transaction, with ``to_gallery = 1``;
:mod:`seawatch.review.gallery_sender` sends it to the topic in decision order, flushes it
and clears the flag (a broker outage delays it and loses nothing). A **split** moves stored
sightings only and a **confirm** changes none: the gallery keeps its views, nothing is sent.
"""

from __future__ import annotations

import sqlite3

GALLERY_ACTIONS = ("merge", "rename")  # the fish actions the shared gallery hears of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fish_gallery_edits (
    id INTEGER PRIMARY KEY,
    individual TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at_ns INTEGER NOT NULL,
    to_gallery INTEGER NOT NULL DEFAULT 1
)
"""


def ensure_edits_table(db: sqlite3.Connection) -> None:
    """The ``fish_gallery_edits`` table (a row per merge or rename, kept once sent)."""
    db.execute(_SCHEMA)


def record_edit(
    db: sqlite3.Connection, individual: str, action: str, target: str, user: str, at_ns: int
) -> None:
    """Keep ``individual``'s merge into (or rename to) ``target`` for the gallery topic; in
    the caller's transaction, the one that changed the ``fish`` rows."""
    if action not in GALLERY_ACTIONS:
        raise ValueError(f"{action!r} is not sent to the gallery; one of {GALLERY_ACTIONS}")
    db.execute(
        "INSERT INTO fish_gallery_edits (individual, action, target, decided_by, "
        "decided_at_ns, to_gallery) VALUES (?, ?, ?, ?, ?, 1)",
        (individual, action, target, user, at_ns),
    )


__all__ = ["GALLERY_ACTIONS", "ensure_edits_table", "record_edit"]
