"""The "merges to confirm" queue on a real store: merges written as the daemon writes them
(:class:`~seawatch.storage.fish_merges.FishMerges`), listed newest first with both ids' views;
Confirm keeps a merge, Undo writes survivor NULL as the system's own unmerge does; both are
compare-and-set with an audit entry, and need the reviewer role and the CSRF token."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest

from seawatch.storage.fish_merges import TWIN, VIEWS, FishMerges, read_merges

URL = "/api/fish/merges/decide"


@pytest.fixture
def merges(station, station_files):
    """Two automatic merges (the newer one a twin), written by the daemon's table writer
    while the station runs, and one the daemon itself undid since."""
    writer = FishMerges(station_files.store)
    writer.record("zf-007", "fish-new-0001", similarity=0.6612, merged_by="w1/11", rule=VIEWS)
    time.sleep(0.002)
    writer.record("fish-new-0002", "fish-new-0001", similarity=0.7134, merged_by="w2/22", rule=TWIN)
    writer.record("fish-new-0077", "fish-new-0001", similarity=0.7, merged_by="w1/11")
    writer.record("fish-new-0077", None, similarity=0.7, merged_by="w1/11")  # undone already
    yield writer
    writer.close()


def _pending(client) -> list[dict]:
    """The queue's cards as the page gives them to its script."""
    page = client.get("/merges").text
    cards = re.findall(
        r'data-individual="([^"]+)" data-merged-at="(\d+)" data-version="(\d+)"', page
    )
    return [{"individual": i, "merged_at_us": int(at), "version": int(v)} for i, at, v in cards]


def _db(station_files) -> sqlite3.Connection:
    return sqlite3.connect(station_files.store)


def test_the_queue_shows_each_unreviewed_merge_newest_first_with_both_sides(as_user, merges):
    client, _ = as_user("vera")  # viewers see the queue
    page = client.get("/merges")
    assert page.status_code == 200
    assert [c["individual"] for c in _pending(client)] == ["fish-new-0002", "zf-007"]
    text = page.text
    assert "0.713" in text and "w2/22" in text and "twins of two workers" in text
    assert "0.661" in text and "its views match the earlier id" in text
    assert "fish-new-0077" not in text  # undone: not a merge to confirm
    # each side's stored views (3 sightings per id in the store), as the fish page shows them
    assert text.count('alt="view of fish-new-0002"') == 3
    assert text.count('alt="view of fish-new-0001"') == 6  # the survivor of both merges
    assert text.count('alt="view of zf-007"') == 3
    partial = client.get("/merges", headers={"HX-Request": "true"}).text
    assert partial.startswith('<div id="merges">') and "<html" not in partial


def test_confirm_keeps_the_merge_and_leaves_the_queue(as_user, merges, station_files):
    client, csrf = as_user("rolf")
    card = _pending(client)[0]
    answer = client.post(URL, json=card | {"action": "confirm"}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == ["fish-merge:fish-new-0002"]
    assert [c["individual"] for c in _pending(client)] == ["zf-007"]
    assert read_merges(station_files.store)["fish-new-0002"] == "fish-new-0001"  # stands
    db = _db(station_files)
    verdict = db.execute(
        "SELECT verdict, version, reviewed_by FROM fish_merge_reviews WHERE individual = ?",
        ("fish-new-0002",),
    ).fetchone()
    assert verdict == ("confirmed", 1, "rolf")
    action, user, before, after, published = db.execute(
        "SELECT action, user, before, after, published FROM decisions WHERE subject = ?",
        ("fish-merge:fish-new-0002",),
    ).fetchone()
    assert (action, user, published) == ("confirm", "rolf", 0)  # in the outbox
    assert json.loads(before)["survivor"] == "fish-new-0001"
    assert json.loads(before)["similarity"] == pytest.approx(0.7134)
    assert json.loads(after) == {
        "individual": "fish-new-0002", "survivor": "fish-new-0001", "verdict": "confirmed",
        "version": 1,
    }  # fmt: skip
    audit = client.get("/audit?subject=fish-merge:fish-new-0002").text
    assert "confirm" in audit and "rolf" in audit


def test_undo_unmerges_as_the_daemon_would_and_leaves_the_queue(as_user, merges, station_files):
    client, csrf = as_user("ada")  # admins may too
    card = next(c for c in _pending(client) if c["individual"] == "zf-007")
    answer = client.post(URL, json=card | {"action": "undo"}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    assert "zf-007" not in read_merges(station_files.store)  # its sightings are its own again
    assert "fish-new-0002" in read_merges(station_files.store)  # the other merge untouched
    row = next(m for m in merges.all() if m.individual == "zf-007")
    assert row.survivor is None and row.merged_by == "review:ada"
    assert [c["individual"] for c in _pending(client)] == ["fish-new-0002"]
    undo = "SELECT after FROM decisions WHERE subject = 'fish-merge:zf-007' AND action = 'undo'"
    after = _db(station_files).execute(undo).fetchone()[0]
    assert json.loads(after) == {
        "individual": "zf-007", "survivor": None, "was_survivor": "fish-new-0001",
        "verdict": "undone", "version": 1,
    }  # fmt: skip
    # the daemon merges the two again later: a new merge, back in the queue for a person
    merges.record("zf-007", "fish-new-0001", similarity=0.69, merged_by="w1/11", rule=VIEWS)
    again = next(c for c in _pending(client) if c["individual"] == "zf-007")
    assert again["version"] == 1 and again["merged_at_us"] > card["merged_at_us"]


def test_a_merge_reviewed_by_someone_else_is_refused_with_who(as_user, merges, station_files):
    rolf, rolf_csrf = as_user("rolf")
    ada, ada_csrf = as_user("ada")
    seen = next(c for c in _pending(ada) if c["individual"] == "fish-new-0002")
    first = rolf.post(URL, json=seen | {"action": "confirm"}, headers={"X-CSRF-Token": rolf_csrf})
    assert first.status_code == 200
    late = ada.post(URL, json=seen | {"action": "undo"}, headers={"X-CSRF-Token": ada_csrf})
    assert late.status_code == 409
    assert late.json()["stale"] == [
        {"subject": "fish-merge:fish-new-0002", "seen_version": 0, "version": 1, "by": "rolf"}
    ]
    assert read_merges(station_files.store)["fish-new-0002"] == "fish-new-0001"  # not undone
    # a merge the daemon made again after the page was drawn: refused too, nothing applied
    other = next(c for c in _pending(ada) if c["individual"] == "zf-007")
    merges.record("zf-007", "fish-new-0001", similarity=0.7, merged_by="w3/33", rule=VIEWS)
    moved = ada.post(URL, json=other | {"action": "confirm"}, headers={"X-CSRF-Token": ada_csrf})
    assert moved.status_code == 409 and moved.json()["stale"][0]["by"] == "w3/33"
    count = "SELECT COUNT(*) FROM decisions WHERE subject LIKE 'fish-merge:%'"
    assert _db(station_files).execute(count).fetchone()[0] == 1  # only rolf's confirm


def test_only_reviewers_with_the_token_decide(app, as_user, merges, station_files):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        assert anonymous.post(URL, json={}).status_code == 401
        assert anonymous.get("/merges", follow_redirects=False).status_code == 303
    anna, anna_csrf = as_user("anna")  # an annotator: objects and otoliths, not fish ids
    card = _pending(anna)[0]
    body = card | {"action": "undo"}
    assert anna.post(URL, json=body, headers={"X-CSRF-Token": anna_csrf}).status_code == 403
    rolf, rolf_csrf = as_user("rolf")
    assert rolf.post(URL, json=body).status_code == 403  # no CSRF token
    assert rolf.post(URL, json=body, headers={"X-CSRF-Token": "0" * 32}).status_code == 403
    missing = body | {"individual": "fish-new-9999"}
    answer = rolf.post(URL, json=missing, headers={"X-CSRF-Token": rolf_csrf})
    assert answer.status_code == 404
    wrong = rolf.post(URL, json=body | {"action": "split"}, headers={"X-CSRF-Token": rolf_csrf})
    assert wrong.status_code == 422
    assert read_merges(station_files.store) == {
        "fish-new-0002": "fish-new-0001", "zf-007": "fish-new-0001"
    }  # fmt: skip


def test_review_serve_sends_fish_edits_only_where_the_daemon_shares_its_gallery(tmp_path):
    from seawatch.config import Settings
    from seawatch.review.command import _gallery_sender

    store = tmp_path / "seawatch.db"
    one_process = Settings(tasks={"fish": {"options": {"shared_gallery": False}}})
    assert _gallery_sender(one_process, store) is None
    assert _gallery_sender(Settings(tasks={"fish": {"enabled": False}}), store) is None
    shared = Settings(
        kafka={"group_id": "ship-7"}, tasks={"fish": {"options": {"gallery_topic": None}}}
    )
    sender = _gallery_sender(shared, store)
    try:  # it opens the topic only once an edit waits (none here: no broker needed)
        assert sender is not None and sender.open_log.args[1] == "ship-7.fish-gallery"
        assert sender.open_log.keywords == {"create": False}
    finally:
        sender.close()
