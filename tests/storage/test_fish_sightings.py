"""Every fish of a whole tank frame in the local store and in line protocol (issue 28): one
row and one point per sighting, replays overwrite, reviews survive, old stores migrate."""

from __future__ import annotations

import sqlite3

from seawatch.contracts.records import FishRecord
from seawatch.dashboards.report.data import from_local_store
from seawatch.storage.line_protocol import frame_lines
from seawatch.storage.local_store import LocalStore, open_readonly
from tests.storage.factories import make_task_record

T = 1_780_000_000_000_000_000
THREE = (
    FishRecord("zf-0-0003", 0.91, False, False, "v0", (10, 20, 90, 30)),
    FishRecord("fish-new-aaa", 0.22, True, True, "v1", (200, 40, 80, 28)),
    FishRecord("fish-new-bbb", 0.31, True, True, "v2", (400, 60, 70, 25)),
)
COLUMNS = "idx, individual, similarity, new_individual, provisional, view, bbox_x, bbox_w"


def _rows(path):
    db = open_readonly(path)
    try:
        return db.execute(f"SELECT {COLUMNS} FROM fish ORDER BY frame_uid, idx").fetchall()
    finally:
        db.close()


def test_a_tank_frame_stores_every_sighting_and_a_replay_overwrites_them(tmp_path):
    path = tmp_path / "s.db"
    store = LocalStore(path)
    store.add([make_task_record("fish", T, sightings=THREE)])
    store.flush()
    expected = [
        (0, "zf-0-0003", 0.91, 0, 0, "v0", 10, 90),
        (1, "fish-new-aaa", 0.22, 1, 1, "v1", 200, 80),
        (2, "fish-new-bbb", 0.31, 1, 1, "v2", 400, 70),
    ]
    assert _rows(path) == expected
    store.add([make_task_record("fish", T, sightings=THREE)])  # the replay
    store.flush()
    assert _rows(path) == expected  # three rows, not six
    # a replay that sees fewer fish keeps only those it sees
    store.add([make_task_record("fish", T, sightings=THREE[:2])])
    store.close()
    assert [r[0] for r in _rows(path)] == [0, 1]


def test_a_replay_keeps_what_a_person_decided_about_a_later_sighting(tmp_path):
    path = tmp_path / "s.db"
    store = LocalStore(path)
    store.add([make_task_record("fish", T, sightings=THREE)])
    store.flush()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE fish SET individual = 'Nemo', version = 1 WHERE idx = 2")
    store.add([make_task_record("fish", T, sightings=THREE)])
    store.close()
    db = open_readonly(path)
    row = db.execute("SELECT individual, predicted_individual FROM fish WHERE idx = 2").fetchone()
    assert row == ("Nemo", "fish-new-bbb")


def test_a_crop_frame_is_one_sighting_at_index_0_as_before(tmp_path):
    path = tmp_path / "s.db"
    store = LocalStore(path)
    store.add([make_task_record("fish", T, fish=THREE[1])])
    store.close()
    assert _rows(path) == [(0, "fish-new-aaa", 0.22, 1, 1, "v1", 200, 80)]


# The fish table before sightings had an index: one row per frame, keyed by its uid.
_OLD_FISH = """
CREATE TABLE fish (
    frame_uid TEXT PRIMARY KEY REFERENCES frames (uid) ON DELETE CASCADE,
    individual TEXT NOT NULL, similarity REAL NOT NULL,
    new_individual INTEGER NOT NULL, provisional INTEGER NOT NULL
, view TEXT, predicted_individual TEXT, status TEXT NOT NULL DEFAULT 'predicted',
version INTEGER NOT NULL DEFAULT 0, reviewed_by TEXT, reviewed_at_ns INTEGER);
CREATE INDEX fish_individual ON fish (individual);
"""


def test_a_store_from_before_sightings_is_migrated_keeping_its_rows_and_reviews(tmp_path):
    path = tmp_path / "old.db"
    store = LocalStore(path)  # the other tables as they are; then the old fish table
    store.add([make_task_record("fish", T, fish=THREE[0])])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE fish")
        db.executescript(_OLD_FISH)
        db.execute(
            "INSERT INTO fish VALUES (?, 'Wanda', 0.9, 0, 0, 'v0', 'zf-0-0003', 'confirmed',"
            " 2, 'ana', 5)",
            (f"tank-cam-03@{T}",),
        )
    # a report read before any daemon opened the store again still shows its fish
    assert [f.individual for f in from_local_store(path).fish] == ["Wanda"]
    store = LocalStore(path)  # opening migrates
    store.add([make_task_record("fish", T + 1, sightings=THREE)])
    store.close()
    db = open_readonly(path)
    rows = db.execute(
        "SELECT frame_uid, idx, individual, status, version, reviewed_by FROM fish "
        "ORDER BY frame_uid, idx"
    ).fetchall()
    assert rows[0] == (f"tank-cam-03@{T}", 0, "Wanda", "confirmed", 2, "ana")
    assert [r[1] for r in rows[1:]] == [0, 1, 2]
    indexes = {r[1] for r in db.execute("PRAGMA index_list(fish)")}
    assert "fish_individual" in indexes
    assert db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'fish_one%'").fetchall() == []


def test_each_sighting_is_its_own_point_and_a_crop_point_is_unchanged():
    lines = frame_lines(make_task_record("fish", T, sightings=THREE))[1:]
    assert len(lines) == 3
    series = [text.split(" ", 1)[0] for text in lines]
    assert series == [
        "fish,cruise=MSM120,instrument=tank-cam-03,model=fish-model",
        "fish,cruise=MSM120,instrument=tank-cam-03,model=fish-model,sighting=1",
        "fish,cruise=MSM120,instrument=tank-cam-03,model=fish-model,sighting=2",
    ]
    (_, crop) = frame_lines(make_task_record("fish", T, fish=THREE[0]))
    assert crop == lines[0]  # a crop frame's point: the same as a tank frame's first
