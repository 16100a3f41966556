"""Decisions through the HTTP API on a real store: validate, reassign, dubious, otoliths,
fish, stale refusals, the audit trail, and a replayed frame keeping what people decided."""

from __future__ import annotations

import sqlite3

from seawatch.storage.local_store import LocalStore
from tests.review.station_data import TAXA


def _objects(path, n=3, where="o.status = 'predicted'"):
    db = sqlite3.connect(path)
    rows = db.execute(
        f"SELECT frame_uid, idx, version, label FROM objects o WHERE {where} "
        "ORDER BY frame_uid LIMIT ?",
        (n,),
    ).fetchall()
    db.close()
    return rows


def _decide(client, csrf, action, rows, taxon=None):
    items = [{"uid": u, "idx": i, "version": v} for u, i, v, _ in rows]
    return client.post(
        "/api/objects/decide",
        json={"action": action, "items": items, "taxon": taxon},
        headers={"X-CSRF-Token": csrf},
    )


def test_validate_reassign_and_dubious_are_stored_with_their_audit(as_user, station_files):
    client, csrf = as_user("anna")
    a, b, c = _objects(station_files.store)
    assert _decide(client, csrf, "validate", [a]).json()["applied"] == [f"object:{a[0]}#0"]
    new = next(t for t in TAXA if t != b[3])
    assert _decide(client, csrf, "reassign", [b], new).status_code == 200
    assert _decide(client, csrf, "dubious", [c]).status_code == 200
    db = sqlite3.connect(station_files.store)
    got = dict(
        ((u, (label, status, version, by)))
        for u, label, status, version, by in db.execute(
            "SELECT frame_uid, label, status, version, reviewed_by FROM objects"
        )
    )
    assert got[a[0]] == (a[3], "validated", 1, "anna")
    assert got[b[0]] == (new, "validated", 1, "anna")
    assert got[c[0]] == (c[3], "dubious", 1, "anna")
    trail = db.execute("SELECT subject, action, user, before, after FROM decisions").fetchall()
    assert [(s, act, u) for s, act, u, _, _ in trail] == [
        (f"object:{a[0]}#0", "validate", "anna"),
        (f"object:{b[0]}#0", "reassign", "anna"),
        (f"object:{c[0]}#0", "dubious", "anna"),
    ]
    assert f'"label": "{b[3]}"' in trail[1][3] and f'"label": "{new}"' in trail[1][4]
    page = client.get("/object", params={"uid": b[0], "idx": 0})
    assert "reassign" in page.text and new in page.text  # the trail shows on the object


def test_a_decision_on_a_stale_version_is_refused_and_reported(as_user, station_files):
    anna, anna_csrf = as_user("anna")
    rolf, rolf_csrf = as_user("rolf")
    rows = _objects(station_files.store, 2)
    assert _decide(anna, anna_csrf, "validate", rows[:1]).status_code == 200
    # rolf saw version 0 of both; the first moved on under him
    answer = _decide(rolf, rolf_csrf, "dubious", rows)
    assert answer.status_code == 409
    body = answer.json()
    assert body["applied"] == [f"object:{rows[1][0]}#0"]
    assert body["stale"] == [
        {"subject": f"object:{rows[0][0]}#0", "seen_version": 0, "version": 1, "by": "anna"}
    ]
    status = sqlite3.connect(station_files.store).execute(
        "SELECT status, reviewed_by FROM objects WHERE frame_uid = ?", (rows[0][0],)
    )
    assert status.fetchone() == ("validated", "anna")  # not overwritten


def test_reassign_to_a_taxon_outside_the_taxonomy_is_refused(as_user, station_files):
    client, csrf = as_user("anna")
    answer = _decide(client, csrf, "reassign", _objects(station_files.store, 1), "made_up")
    assert answer.status_code == 409 and "taxonomy" in answer.json()["detail"]
    assert answer.json()["applied"] == []


def test_a_replayed_frame_keeps_the_review_and_updates_the_model_columns(as_user, station_files):
    from tests.storage.factories import make_record

    record = make_record(taxa=("copepod", "detritus"))
    store = LocalStore(station_files.store)
    store.add([record])
    store.flush()
    client, csrf = as_user("anna")
    row = (record.uid, 1, 0, "detritus")
    assert _decide(client, csrf, "reassign", [row], "marine_snow").status_code == 200
    store.add([make_record(taxa=("copepod", "bubble"))])  # the replay: the model now says bubble
    store.close()
    db = sqlite3.connect(station_files.store)
    got = db.execute(
        "SELECT taxon, label, status, version FROM objects WHERE frame_uid = ? AND idx = 1",
        (record.uid,),
    ).fetchone()
    assert got == ("bubble", "marine_snow", "validated", 1)


def test_otolith_confirm_with_a_type_and_reject(as_user, station_files):
    client, csrf = as_user("anna")
    queue = client.get("/otoliths")
    assert queue.text.count('class="otolith"') == 4
    db = sqlite3.connect(station_files.store)
    uids = [u for (u,) in db.execute("SELECT frame_uid FROM otolith ORDER BY score DESC")]
    h = {"X-CSRF-Token": csrf}
    body = {"uid": uids[0], "version": 0, "action": "confirm", "anomaly_type": "vaterite"}
    assert client.post("/api/otoliths/decide", json=body, headers=h).status_code == 200
    body = {"uid": uids[1], "version": 0, "action": "reject"}
    assert client.post("/api/otoliths/decide", json=body, headers=h).status_code == 200
    body = {"uid": uids[2], "version": 0, "action": "confirm"}  # no type
    assert client.post("/api/otoliths/decide", json=body, headers=h).status_code == 409
    body = {"uid": "no-such@1", "version": 0, "action": "reject"}
    assert client.post("/api/otoliths/decide", json=body, headers=h).status_code == 404
    got = dict(
        db.execute("SELECT frame_uid, status || ':' || COALESCE(anomaly_type, '') FROM otolith")
    )
    assert got[uids[0]] == "confirmed:vaterite" and got[uids[1]] == "rejected:"
    assert client.get("/otoliths").text.count('class="otolith"') == 2


def test_fish_merge_rename_and_split(as_user, station_files):
    client, csrf = as_user("rolf")
    h = {"X-CSRF-Token": csrf}
    db = sqlite3.connect(station_files.store)

    def sightings(name):
        return [
            u
            for (u,) in db.execute(
                "SELECT frame_uid FROM fish WHERE individual = ? ORDER BY 1", (name,)
            )
        ]

    two = sightings("fish-new-0002")
    merge = {"individual": "fish-new-0002", "version": 0, "action": "merge", "target": "zf-007"}
    assert client.post("/api/fish/decide", json=merge, headers=h).status_code == 200
    assert sightings("fish-new-0002") == [] and set(two) <= set(sightings("zf-007"))
    rename = {"individual": "fish-new-0001", "version": 0, "action": "rename", "target": "zf-011"}
    assert client.post("/api/fish/decide", json=rename, headers=h).status_code == 200
    moved = sightings("zf-011")[:1]
    split = {
        "individual": "zf-011",
        "version": 1,
        "action": "split",
        "target": "zf-012",
        "sightings": moved,
    }
    assert client.post("/api/fish/decide", json=split, headers=h).status_code == 200
    assert sightings("zf-012") == moved and len(sightings("zf-011")) == 2
    stale = {"individual": "zf-011", "version": 1, "action": "confirm"}  # version 2 since the split
    answer = client.post("/api/fish/decide", json=stale, headers=h)
    assert answer.status_code == 409 and answer.json()["stale"][0]["by"] == "rolf"
    actions = [a for (a,) in db.execute("SELECT action FROM decisions ORDER BY id")]
    assert actions == ["merge", "rename", "split"]


def test_the_grid_carries_its_thumbnails_inline(as_user, station_files):
    """One response holds the page's thumbnails (data: URIs of the kept thumbnails); a
    crop gone past retention says so instead of naming an image that 404s."""
    import base64
    import re

    from seawatch.storage.crop_store import CropStore

    client, _ = as_user("vera")
    html = client.get("/objects", params={"order": "time"}).text
    sources = re.findall(r'<img src="(data:image/(?:jpeg|png);base64,[^"]+)"', html)
    assert len(sources) == html.count('class="cell ')  # every object of the page
    crops = CropStore(station_files.crops, readonly=True)
    digest = (
        sqlite3.connect(station_files.store)
        .execute("SELECT crop FROM objects WHERE crop IS NOT NULL ORDER BY rowid LIMIT 1")
        .fetchone()[0]
    )
    inline = base64.b64encode(crops.thumbs([digest])[digest]).decode()
    crops.close()
    assert any(s.endswith(inline) for s in sources)
    db = sqlite3.connect(station_files.crops)
    db.execute("DELETE FROM crops")
    db.execute("DELETE FROM thumbs")
    db.commit()
    html = client.get("/objects", params={"order": "time"}).text
    assert "data:image" not in html and "crop past retention" in html


def test_a_tank_frame_shows_each_sighting_and_a_split_moves_only_the_ticked_one(
    as_user, station_files
):
    """A whole tank frame's fish are sightings of their own on the fish page (named frame
    uid, ``/k`` for its later fish); splitting one off leaves the frame's other sightings."""
    from seawatch.contracts.frames import SourceRef
    from seawatch.contracts.records import FishRecord, FrameRecord
    from tests.review.station_data import T0, _meta

    meta = _meta("tank-cam-03", "fish", T0 + 100_000_000_000)
    seen = (
        FishRecord("zf-007", 0.9, False, False, bbox=(0, 0, 50, 20)),
        FishRecord("fish-new-0009", 0.2, True, True, bbox=(80, 0, 50, 20)),
        FishRecord("zf-007", 0.8, False, False, bbox=(160, 0, 50, 20)),
    )
    record = FrameRecord(
        meta,
        SourceRef("frames.fish", 0, 99),
        "fish",
        "1",
        (),
        1,
        1,
        1,
        fish=seen[0],
        sightings=seen,
    )
    store = LocalStore(station_files.store)
    store.add([record])
    store.close()
    client, csrf = as_user("rolf")
    page = client.get("/fish?all=true").text
    for sighting in (meta.uid, f"{meta.uid}/1", f"{meta.uid}/2"):
        assert f'value="{sighting}"' in page
    db = sqlite3.connect(station_files.store)
    version = db.execute("SELECT MAX(version) FROM fish WHERE individual = 'zf-007'").fetchone()[0]
    split = {
        "individual": "zf-007",
        "version": version,
        "action": "split",
        "target": "zf-013",
        "sightings": [f"{meta.uid}/2"],
    }
    answer = client.post("/api/fish/decide", json=split, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    rows = db.execute(
        "SELECT idx, individual FROM fish WHERE frame_uid = ? ORDER BY idx", (meta.uid,)
    )
    assert rows.fetchall() == [(0, "zf-007"), (1, "fish-new-0009"), (2, "zf-013")]
