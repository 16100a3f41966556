"""The `review` points: the validated share per cruise and taxon and the otolith review
share, as line protocol, written through a durable outbox."""

from __future__ import annotations

import sqlite3

from seawatch.review.progress import progress_lines


def test_progress_counts_validated_and_dubious_per_cruise_and_taxon(station_files):
    db = sqlite3.connect(station_files.store)
    uids = [u for (u,) in db.execute(
        "SELECT frame_uid FROM objects WHERE cruise = 'PS-140' AND label = 'copepod' LIMIT 3"
    )]  # fmt: skip
    db.execute("UPDATE objects SET status = 'validated' WHERE frame_uid IN (?, ?)", uids[:2])
    db.execute("UPDATE objects SET status = 'dubious' WHERE frame_uid = ?", uids[2:])
    db.execute("UPDATE otolith SET status = 'confirmed' WHERE rowid = 1")
    db.commit()
    total = db.execute(
        "SELECT COUNT(*) FROM objects WHERE cruise = 'PS-140' AND label = 'copepod'"
    ).fetchone()[0]
    lines = progress_lines(db, now_ns=123)
    copepod = next(x for x in lines if "cruise=PS-140" in x and "taxon=copepod" in x)
    assert copepod == (
        f"review,cruise=PS-140,kind=plankton,taxon=copepod objects={total}i,validated=2i,"
        f"dubious=1i,validated_share={round(2 / total, 6)} 123"
    )
    otolith = next(x for x in lines if "kind=otolith" in x)
    assert "flagged=4i,confirmed=1i,rejected=0i,reviewed_share=0.25" in otolith
    cruises = {x.split(",")[1] for x in lines if "kind=plankton" in x}
    assert cruises == {"cruise=PS-140", "cruise=MSM-120"}


def test_a_taxon_whose_last_object_is_reassigned_gets_a_row_of_zeros_once(station_files):
    db = sqlite3.connect(station_files.store)
    known: set[tuple[str, str]] = set()
    first = progress_lines(db, now_ns=1, known=known)
    assert ("PS-140", "copepod") in known and len(known) == sum("kind=plankton" in x for x in first)
    db.execute(
        "UPDATE objects SET label = 'detritus' WHERE cruise = 'PS-140' AND label = 'copepod'"
    )
    db.commit()
    second = progress_lines(db, now_ns=2, known=known)
    gone = [x for x in second if "cruise=PS-140" in x and "taxon=copepod" in x]
    assert gone == [
        "review,cruise=PS-140,kind=plankton,taxon=copepod objects=0i,validated=0i,dubious=0i,"
        "validated_share=0.0 2"
    ]
    assert ("PS-140", "copepod") not in known  # written as gone once, not again
    third = progress_lines(db, now_ns=3, known=known)
    assert not any("cruise=PS-140" in x and "taxon=copepod" in x for x in third)
