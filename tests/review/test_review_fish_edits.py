"""The fish page's merges and renames, kept for the shared gallery in the decision's own
transaction (a split or confirm keeps nothing), and the records each one becomes: in
decision order, from each id's latest record, nothing for an id the topic does not hold."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import individual_record
from seawatch.review.decisions import DecisionError, decide_fish, individual_version
from seawatch.review.gallery_sender import UNDO, GalleryWrite, gallery_records, pending_writes
from seawatch.review.merge_reviews import ensure_review_tables
from seawatch.storage.fish_sightings import SIGHTING_ID
from tests.review.station_data import build_station


@pytest.fixture
def db(tmp_path):
    files = build_station(tmp_path, plankton=4)  # fish-new-0001, fish-new-0002, zf-007
    con = sqlite3.connect(files.store, isolation_level=None)
    ensure_review_tables(con)
    yield con
    con.close()


def _decide(db, name: str, action: str, **kw):
    return decide_fish(db, "rolf", name, individual_version(db, name), action, **kw)


def test_merges_and_renames_wait_for_the_gallery_in_decision_order(db):
    _decide(db, "fish-new-0001", "confirm")
    sighting = db.execute(
        f"SELECT {SIGHTING_ID} FROM fish WHERE individual = 'fish-new-0002'"
    ).fetchone()[0]
    _decide(db, "fish-new-0002", "split", target="fish-new-0003", sightings=[sighting])
    assert pending_writes(db) == []  # a confirm and a split send nothing
    _decide(db, "fish-new-0002", "merge", target="zf-007")
    _decide(db, "fish-new-0001", "rename", target="Nemo")
    db.execute(  # an undo of an automatic merge, decided between the two
        "INSERT INTO fish_merge_reviews VALUES ('fish-new-0009', 1, 'undone', 1, 'ada', ?, 1)",
        (pending_writes(db)[0].at_ns + 1,),
    )
    writes = pending_writes(db)
    assert [(w.action, w.individual, w.target, w.user) for w in writes] == [
        ("merge", "fish-new-0002", "zf-007", "rolf"),
        (UNDO, "fish-new-0009", None, "ada"),
        ("rename", "fish-new-0001", "Nemo", "rolf"),
    ]
    with pytest.raises(DecisionError):  # a refused decision keeps nothing
        _decide(db, "fish-new-0003", "rename", target="zf-007")
    assert len(pending_writes(db)) == 3


def test_a_failed_decision_keeps_no_edit(db):
    before = db.execute("SELECT COUNT(*) FROM fish_gallery_edits").fetchone()[0]
    with pytest.raises(DecisionError):  # the split fails after the update: rolled back
        _decide(db, "fish-new-0001", "split", target="x", sightings=["nope#0"])
    with pytest.raises(DecisionError):
        _decide(db, "fish-new-0001", "merge", target="fish-new-0001")
    assert db.execute("SELECT COUNT(*) FROM fish_gallery_edits").fetchone()[0] == before == 0


def _latest() -> dict[str, bytes | None]:
    gallery = Gallery(4)
    a = gallery.enrol_new(np.eye(4)[0], source="cam@1", first_seen_ns=1).id
    b = gallery.enrol_new(np.eye(4)[1], source="cam@2", first_seen_ns=2).id
    return {i: individual_record(gallery, i, worker="w", model="m")[1] for i in (a, b)}


def test_each_edit_becomes_its_records_or_says_why_none():
    latest = _latest()
    a, b = latest
    (key, raw) = gallery_records(GalleryWrite(1, "merge", a, b, "rolf"), latest)[0]
    assert key == a and json.loads(raw)["merged_into"] == b
    rename = GalleryWrite(2, "rename", a, "Nemo", "rolf")
    (n, renamed), (k, merged) = gallery_records(rename, latest)
    assert (n, k) == ("Nemo", a) and json.loads(merged)["merged_into"] == "Nemo"
    assert json.loads(renamed)["individual"] == "Nemo"  # the new id before the merge into it
    into_known = gallery_records(GalleryWrite(3, "merge", a, "zf-007", "rolf"), latest)
    assert json.loads(into_known[0][1])["merged_into"] == "zf-007"  # held by seed galleries
    unknown = gallery_records(GalleryWrite(4, "rename", "zf-007", "Nemo", "rolf"), latest)
    assert "does not hold this id" in unknown
    taken = gallery_records(GalleryWrite(5, "rename", a, b, "rolf"), latest)
    assert "already holds the new name" in taken
    # a send that stopped after the new id: the retry sends only the merge into it
    half = latest | {"Nemo": renamed}
    ((key, raw),) = gallery_records(rename, half)
    assert key == a and json.loads(raw)["merged_into"] == "Nemo"
    assert "nothing to undo" in gallery_records(GalleryWrite(6, UNDO, a, None, "ada"), latest)
