"""What people decide, written to the local store: each change is a compare-and-set on the
subject's version, in one transaction with its audit entry (who, when, before, after).

A decision made on a version that someone else changed since is refused and reported
(:class:`Outcome.stale`), never silently overwritten. The audit entries double as an outbox:
:mod:`seawatch.review.publish` sends them to the ``reviews`` topic.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from seawatch.review.gallery_edits import GALLERY_ACTIONS, record_edit
from seawatch.review_settings import ANOMALY_TYPES
from seawatch.storage.fish_sightings import SIGHTING_ID

OBJECT_ACTIONS = ("validate", "reassign", "dubious")
OTOLITH_ACTIONS = ("confirm", "reject")


class DecisionError(ValueError):
    """A decision that cannot be made as asked in the current state (a taxon not in the
    taxonomy, a name that exists, a confirm without a type); the API answers 409."""


class NoSuchSubject(DecisionError):
    """The object, otolith or fish id does not exist (or no longer); the API answers 404."""


@dataclass(frozen=True, slots=True)
class Stale:
    """A refused decision: the subject changed since the user saw it."""

    subject: str
    seen_version: int
    version: int
    by: str | None


@dataclass(slots=True)
class Outcome:
    """What a decision did: subjects changed and subjects refused as stale."""

    applied: list[str] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)


# The routes run on a thread pool and share the station's one write connection: a second
# BEGIN on it while a transaction is open fails ("cannot start a transaction within a
# transaction", a 503), and its statements would join the open one. SQLite has one writer
# at a time anyway, so this process's write transactions take turns.
_WRITES = threading.Lock()


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (one at a time in this process) that waits for the daemon's
    (BEGIN IMMEDIATE)."""
    with _WRITES:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # also after a failed COMMIT: never leave it open
                db.execute("ROLLBACK")
            raise


def write_audit(db, subject: str, action: str, user: str, before: dict, after: dict) -> None:
    """One audit entry (also the outbox row the publisher sends to Kafka)."""
    db.execute(
        "INSERT INTO decisions (subject, action, user, at_ns, before, after) VALUES (?,?,?,?,?,?)",
        (subject, action, user, time.time_ns(), json.dumps(before), json.dumps(after)),
    )


def object_subject(uid: str, idx: int) -> str:
    """The audit subject of a plankton object."""
    return f"object:{uid}#{idx}"


def decide_objects(
    db: sqlite3.Connection,
    user: str,
    items: Sequence[tuple[str, int, int]],
    action: str,
    taxon: str | None = None,
    known_taxa: set[str] | None = None,
) -> Outcome:
    """Validate, reassign (to ``taxon``) or mark dubious the objects ``(uid, idx, version)``;
    each whose version moved on is refused."""
    if action not in OBJECT_ACTIONS:
        raise DecisionError(f"unknown action {action!r}; one of {', '.join(OBJECT_ACTIONS)}")
    if action == "reassign" and (not taxon or (known_taxa is not None and taxon not in known_taxa)):
        raise DecisionError(f"reassign needs a taxon of the taxonomy, got {taxon!r}")
    outcome = Outcome()
    now = time.time_ns()
    with transaction(db):
        for uid, idx, seen in items:
            subject = object_subject(uid, idx)
            row = db.execute(
                "SELECT label, status, version, reviewed_by FROM objects "
                "WHERE frame_uid = ? AND idx = ?",
                (uid, idx),
            ).fetchone()
            if row is None:
                raise NoSuchSubject(f"no object {uid}#{idx}")
            label, status, version, by = row
            if version != seen:
                outcome.stale.append(Stale(subject, seen, version, by))
                continue
            new_label = taxon if action == "reassign" else label
            new_status = "dubious" if action == "dubious" else "validated"
            db.execute(
                "UPDATE objects SET label = ?, status = ?, version = version + 1, "
                "reviewed_by = ?, reviewed_at_ns = ? WHERE frame_uid = ? AND idx = ?",
                (new_label, new_status, user, now, uid, idx),
            )
            before = {"label": label, "status": status, "version": version}
            after = {"label": new_label, "status": new_status, "version": version + 1}
            write_audit(db, subject, action, user, before, after)
            outcome.applied.append(subject)
    return outcome


def decide_otolith(
    db: sqlite3.Connection,
    user: str,
    uid: str,
    seen: int,
    action: str,
    anomaly_type: str | None = None,
) -> Outcome:
    """Confirm a flagged specimen's anomaly (with its type) or reject it as normal."""
    if action not in OTOLITH_ACTIONS:
        raise DecisionError(f"unknown action {action!r}; one of {', '.join(OTOLITH_ACTIONS)}")
    if action == "confirm" and anomaly_type not in ANOMALY_TYPES:
        raise DecisionError(f"confirm needs a type ({', '.join(ANOMALY_TYPES)})")
    subject = f"otolith:{uid}"
    outcome = Outcome()
    with transaction(db):
        row = db.execute(
            "SELECT status, anomaly_type, version, reviewed_by FROM otolith WHERE frame_uid = ?",
            (uid,),
        ).fetchone()
        if row is None:
            raise NoSuchSubject(f"no otolith {uid}")
        status, kind, version, by = row
        if version != seen:
            outcome.stale.append(Stale(subject, seen, version, by))
            return outcome
        new_status = "confirmed" if action == "confirm" else "rejected"
        new_kind = anomaly_type if action == "confirm" else None
        db.execute(
            "UPDATE otolith SET status = ?, anomaly_type = ?, version = version + 1, "
            "reviewed_by = ?, reviewed_at_ns = ? WHERE frame_uid = ?",
            (new_status, new_kind, user, time.time_ns(), uid),
        )
        before = {"status": status, "anomaly_type": kind, "version": version}
        after = {"status": new_status, "anomaly_type": new_kind, "version": version + 1}
        write_audit(db, subject, action, user, before, after)
        outcome.applied.append(subject)
    return outcome


def individual_version(db: sqlite3.Connection, name: str) -> int:
    """The version of a fish id as a page shows it: the highest of its sightings'."""
    row = db.execute("SELECT MAX(version) FROM fish WHERE individual = ?", (name,)).fetchone()
    if row[0] is None:
        raise NoSuchSubject(f"no fish {name!r}")
    return int(row[0])


def _fish_name(name: str) -> str:
    name = name.strip()
    if not (1 <= len(name) <= 64) or any(c in name for c in "\t\n\r<>\"'&"):
        raise DecisionError("a fish name is 1-64 characters without tabs, newlines, < > \" ' &")
    return name


def decide_fish(
    db: sqlite3.Connection,
    user: str,
    name: str,
    seen: int,
    action: str,
    *,
    target: str | None = None,
    sightings: Sequence[str] = (),
) -> Outcome:
    """confirm / rename (to ``target``) / merge (into ``target``) / split (``sightings`` to
    a new id ``target``) a fish id, if its version is still ``seen``. A rename or merge is
    also kept for the shared gallery's topic (:mod:`seawatch.review.gallery_edits`), so the
    daemon reports later sightings under the new id; a split or confirm sends nothing."""
    subject = f"fish:{name}"
    outcome = Outcome()
    with transaction(db):
        version = individual_version(db, name)
        if action == "merge":  # the target only grows; its version need not be the seen one
            target_name = _fish_name(target or "")
            if target_name == name:
                raise DecisionError("merge into another fish id")
            individual_version(db, target_name)
        if version != seen:
            by = db.execute(
                "SELECT reviewed_by FROM fish WHERE individual = ? ORDER BY version DESC",
                (name,),
            ).fetchone()[0]
            outcome.stale.append(Stale(subject, seen, version, by))
            return outcome
        now = time.time_ns()
        count = db.execute("SELECT COUNT(*) FROM fish WHERE individual = ?", (name,)).fetchone()
        before = {"individual": name, "sightings": count[0], "version": version}
        if action == "confirm":
            where, params, new_name = "individual = ?", [name], name
            status = "confirmed"
        elif action in ("rename", "merge"):
            new_name = _fish_name(target or "")
            exists = db.execute("SELECT 1 FROM fish WHERE individual = ?", (new_name,)).fetchone()
            if action == "rename" and exists:
                raise DecisionError(f"{new_name!r} exists; merge into it instead")
            where, params, status = "individual = ?", [name], "confirmed"
        elif action == "split":
            new_name = _fish_name(target or "")
            if db.execute("SELECT 1 FROM fish WHERE individual = ?", (new_name,)).fetchone():
                raise DecisionError(f"{new_name!r} exists; split to a new id")
            if not sightings:
                raise DecisionError("split needs the sightings that belong to the new id")
            marks = ",".join("?" * len(sightings))
            where = f"individual = ? AND {SIGHTING_ID} IN ({marks})"
            params = [name, *sightings]
            status = "confirmed"
        else:
            raise DecisionError(f"unknown action {action!r}; confirm, rename, merge or split")
        # Every sighting of both ids takes one new version: a page showing either id as it
        # was (before it lost or gained views) is stale now.
        target_version = db.execute(
            "SELECT MAX(version) FROM fish WHERE individual = ?", (new_name,)
        ).fetchone()[0]
        new_version = max(version, target_version or 0) + 1
        moved = db.execute(
            f"UPDATE fish SET individual = ?, status = ?, version = ?, "
            f"reviewed_by = ?, reviewed_at_ns = ? WHERE {where}",
            [new_name, status, new_version, user, now, *params],
        ).rowcount
        if action == "split" and moved != len(set(sightings)):
            raise DecisionError("some sightings to split are not this fish's")
        db.execute(
            "UPDATE fish SET version = ? WHERE individual IN (?, ?)", (new_version, name, new_name)
        )
        if action in GALLERY_ACTIONS:  # the workers' galleries hear of it (gallery_sender)
            record_edit(db, name, action, new_name, user, now)
        after = {"individual": new_name, "sightings": moved, "version": new_version}
        write_audit(db, subject, action, user, before, after)
        outcome.applied.append(subject)
    return outcome


__all__ = [
    "OBJECT_ACTIONS",
    "OTOLITH_ACTIONS",
    "DecisionError",
    "NoSuchSubject",
    "Outcome",
    "Stale",
    "decide_fish",
    "decide_objects",
    "decide_otolith",
    "individual_version",
    "object_subject",
    "transaction",
    "write_audit",
]
