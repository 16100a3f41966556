"""The review station's ``review`` points for the test cruise, made by the real code: the
cruise's records go into a real LocalStore, people's decisions are applied with
:mod:`seawatch.review.decisions` (validate, mark dubious, reassign a taxon, confirm or
reject a flagged otolith), and :func:`seawatch.review.progress.progress_lines` writes a
snapshot every 4 minutes, two or three per 10-minute bucket.

Beside the points, the decisions are followed here in plain Python (who is validated,
dubious, relabelled) and each snapshot's counts kept, so every review panel's expected
numbers come from the decisions, independently of SQLite and InfluxQL; the checks at the
end compare them with what each panel's query returned.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seawatch.review.decisions import decide_objects, decide_otolith
from seawatch.review.progress import progress_lines
from seawatch.storage.local_store import LocalStore
from tests.dashboards import cruise_data as cd

SNAPSHOT_EVERY_NS = 240 * 10**9
SNAPSHOTS = [cd.T0 + 60 * 10**9 + k * SNAPSHOT_EVERY_NS for k in range(30)]
Key = tuple[str, str]  # (cruise, taxon)


@dataclass(frozen=True)
class Snapshot:
    """What one ``review`` write says: per (cruise, taxon) objects/validated/dubious, per
    cruise flagged/confirmed/rejected otoliths."""

    time_ns: int
    plankton: dict[Key, tuple[int, int, int]]
    otolith: dict[str, tuple[int, int, int]]


@dataclass(frozen=True)
class ReviewProgress:
    """The line protocol written and the snapshots it should say."""

    lines: list[str]
    snapshots: list[Snapshot] = field(default_factory=list)


def _plankton_counts(objects: dict[tuple[str, int], list[str]]) -> dict[Key, tuple[int, int, int]]:
    counts: dict[Key, list[int]] = {}
    for ship, label, status in objects.values():
        entry = counts.setdefault((ship, label), [0, 0, 0])
        entry[0] += 1
        entry[1] += status == "validated"
        entry[2] += status == "dubious"
    return {key: (n, v, d) for key, (n, v, d) in counts.items()}


def make_review(cruise: cd.Cruise, root: Path, seed: int = 25) -> ReviewProgress:
    """Store the cruise, decide over two hours, and write a snapshot every 4 minutes."""
    store = LocalStore(root / "seawatch.db")
    store.add(cruise.plankton + cruise.otolith)
    store.close()
    db = sqlite3.connect(root / "seawatch.db", isolation_level=None)
    rng = random.Random(seed)
    objects = {  # (uid, idx) -> [cruise, label, status], followed here
        (r.uid, o.index): [r.meta.cruise, o.taxon, "predicted"]
        for r in cruise.plankton
        for o in r.objects
    }
    flagged = {r.uid: [r.meta.cruise, "predicted"] for r in cruise.otolith if r.otolith.anomaly}
    assert len(flagged) >= 6 and len(objects) >= 200
    lines, snapshots = [], []
    for k, now in enumerate(SNAPSHOTS):
        for key in rng.sample(sorted(objects), 5):
            _decide_object(db, rng, objects, key)
        if k % 3 == 1:
            uid = rng.choice(sorted(flagged))
            confirm = rng.random() < 0.5
            (version,) = db.execute(
                "SELECT version FROM otolith WHERE frame_uid = ?", (uid,)
            ).fetchone()
            action, kind = ("confirm", "vaterite") if confirm else ("reject", None)
            assert decide_otolith(db, "rolf", uid, version, action, kind).applied
            flagged[uid][1] = "confirmed" if confirm else "rejected"
        lines += progress_lines(db, now_ns=now)
        otolith: dict[str, list[int]] = {}
        for ship, status in flagged.values():
            entry = otolith.setdefault(ship, [0, 0, 0])
            entry[0] += 1
            entry[1] += status == "confirmed"
            entry[2] += status == "rejected"
        plankton = _plankton_counts(objects)
        if snapshots:  # a series that stops would keep its last point as "latest"
            assert snapshots[-1].plankton.keys() <= plankton.keys()
        snapshots.append(Snapshot(now, plankton, {c: tuple(v) for c, v in otolith.items()}))
    db.close()
    return ReviewProgress(lines, snapshots)


def _decide_object(db: sqlite3.Connection, rng: random.Random, objects: dict, key) -> None:
    """Validate (3 in 5), mark dubious or reassign to another taxon (never the last object
    of its cruise and taxon, so no series ends)."""
    ship, label, _ = objects[key]
    action, taxon = rng.choice(("validate", "validate", "validate", "dubious", "reassign")), None
    if action == "reassign":
        taxon = rng.choice([t for t in cd.TAXA if t != label])
        if sum(v[0] == ship and v[1] == label for v in objects.values()) < 2:
            action, taxon = "validate", None
    (version,) = db.execute(
        "SELECT version FROM objects WHERE frame_uid = ? AND idx = ?", key
    ).fetchone()
    assert decide_objects(db, "anna", [(*key, version)], action, taxon).applied
    objects[key] = [ship, taxon or label, "dubious" if action == "dubious" else "validated"]


# --- the checks of the review panels --------------------------------------------------------


def _cruises(sel: cd.Selection) -> Callable[[str], bool]:
    return lambda c: sel.get("cruise") is None or c in sel["cruise"]


def _last_per_bucket(review: ReviewProgress) -> dict[int, Snapshot]:
    return {cd.bucket(s.time_ns): s for s in review.snapshots}  # later ones win


def _summed(snapshot: Snapshot, sel: cd.Selection, by: Callable[[Key], str]) -> dict[str, list]:
    out: dict[str, list] = {}
    for key, counts in snapshot.plankton.items():
        if _cruises(sel)(key[0]):
            entry = out.setdefault(by(key), [0, 0, 0])
            for i, n in enumerate(counts):
                entry[i] += n
    return out


def review_totals(r, cruise: cd.Cruise, sel: cd.Selection) -> None:
    (series,) = r["A"]
    (row,) = series.rows()
    (total,) = _summed(cruise.review.snapshots[-1], sel, lambda key: "all").values()
    assert (row["objects"], row["validated"], row["dubious"]) == tuple(total)
    assert row["validated share"] == pytest.approx(total[1] / total[0])
    assert 0 < total[1] < total[0] and total[2] > 0


def validated_share_per_cruise(r, cruise: cd.Cruise, sel: cd.Selection) -> None:
    expected: dict[str, dict[int, float]] = {}
    for t, snapshot in _last_per_bucket(cruise.review).items():
        for ship, (n, validated, _) in _summed(snapshot, sel, lambda key: key[0]).items():
            expected.setdefault(ship, {})[t] = validated / n
    actual = {s.tags["cruise"]: dict(s.values) for s in r["A"]}
    assert actual.keys() == expected.keys()
    for ship, shares in expected.items():
        assert actual[ship] == pytest.approx(shares, rel=1e-9)
        assert len(set(shares.values())) > 3  # the share grows: not one flat value


def validated_and_dubious_per_taxon(r, cruise: cd.Cruise, sel: cd.Selection) -> None:
    latest = _summed(cruise.review.snapshots[-1], sel, lambda key: key[1])
    expected = {taxon: (v, d, n - v - d) for taxon, (n, v, d) in latest.items()}
    actual = {}
    for s in r["A"]:
        (row,) = s.rows()
        actual[s.tags["taxon"]] = (row["validated"], row["dubious"], row["to review"])
    assert actual == expected


def otolith_review_share(r, cruise: cd.Cruise, sel: cd.Selection) -> None:
    expected: dict[str, dict[int, float]] = {}
    for t, snapshot in _last_per_bucket(cruise.review).items():
        for ship, (flagged, confirmed, rejected) in snapshot.otolith.items():
            if _cruises(sel)(ship):
                expected.setdefault(ship, {})[t] = (confirmed + rejected) / flagged
    actual = {s.tags["cruise"]: dict(s.values) for s in r["A"]}
    assert actual.keys() == expected.keys()
    for ship, shares in expected.items():
        assert actual[ship] == pytest.approx(shares, abs=1e-6)  # written rounded to 6 places


def confirmed_vs_rejected(r, cruise: cd.Cruise, sel: cd.Selection) -> None:
    expected = {
        ship: (confirmed, rejected, flagged - confirmed - rejected)
        for ship, (flagged, confirmed, rejected) in cruise.review.snapshots[-1].otolith.items()
        if _cruises(sel)(ship)
    }
    actual = {}
    for s in r["A"]:
        (row,) = s.rows()
        actual[s.tags["cruise"]] = (row["confirmed"], row["rejected"], row["to review"])
    assert actual == expected
    assert all(c and rj for c, rj, _ in expected.values())


CHECKS: dict[str, Callable] = {
    "Review totals": review_totals,
    "Validated share per cruise": validated_share_per_cruise,
    "Validated and dubious per taxon": validated_and_dubious_per_taxon,
    "Otolith review share": otolith_review_share,
    "Flagged otoliths: confirmed vs rejected": confirmed_vs_rejected,
}

__all__ = ["CHECKS", "ReviewProgress", "Snapshot", "make_review"]
