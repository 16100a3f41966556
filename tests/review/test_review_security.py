"""The review station's security: login required, roles, CSRF, session fixation, the login
limit, crop and evidence names that cannot reach outside their stores, and script injection
through a frame header or a taxon name."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from tests.review.conftest import csrf_of, login
from tests.review.station_data import PASSWORD


def _first(path):
    db = sqlite3.connect(path)
    uid, idx, crop = db.execute("SELECT frame_uid, idx, crop FROM objects LIMIT 1").fetchone()
    return uid, idx, crop


@pytest.mark.parametrize("path", ["/objects", "/otoliths", "/fish", "/audit", "/taxonomy"])
def test_pages_need_a_login(app, path):
    with TestClient(app) as client:
        answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_api_and_images_need_a_login(app, station_files):
    uid, idx, crop = _first(station_files.store)
    with TestClient(app) as client:
        assert client.get(f"/crops/{crop}.png", follow_redirects=False).status_code == 303
        assert client.get(f"/thumbs/{crop}.jpg", follow_redirects=False).status_code == 303
        body = {"action": "validate", "items": [{"uid": uid, "idx": idx, "version": 0}]}
        assert client.post("/api/objects/decide", json=body).status_code == 401


def test_roles_limit_what_a_user_may_do(as_user, station_files):
    uid, idx, _ = _first(station_files.store)
    body = {"action": "validate", "items": [{"uid": uid, "idx": idx, "version": 0}]}
    viewer, csrf = as_user("vera")
    assert viewer.get("/objects").status_code == 200
    assert (
        viewer.post("/api/objects/decide", json=body, headers={"X-CSRF-Token": csrf}).status_code
        == 403
    )
    annotator, csrf = as_user("anna")
    fish = {"individual": "zf-007", "version": 0, "action": "confirm"}
    assert (
        annotator.post("/api/fish/decide", json=fish, headers={"X-CSRF-Token": csrf}).status_code
        == 403
    )
    taxon = {"group": "living", "taxon": "salp"}
    assert (
        annotator.post("/api/taxa", json=taxon, headers={"X-CSRF-Token": csrf}).status_code == 403
    )
    admin, csrf = as_user("ada")
    assert admin.post("/api/taxa", json=taxon, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert "salp" in admin.get("/taxonomy").text


def test_writes_need_the_sessions_csrf_token(as_user, station_files):
    uid, idx, _ = _first(station_files.store)
    body = {"action": "validate", "items": [{"uid": uid, "idx": idx, "version": 0}]}
    client, csrf = as_user("anna")
    assert client.post("/api/objects/decide", json=body).status_code == 403
    _, other_csrf = as_user("rolf")
    bad = {"X-CSRF-Token": other_csrf}  # another session's token
    assert client.post("/api/objects/decide", json=body, headers=bad).status_code == 403
    assert client.post("/logout", data={"csrf": "0" * 32}).status_code == 403
    ok = client.post("/api/objects/decide", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


def test_login_makes_a_new_session_so_a_planted_cookie_is_useless(app):
    with TestClient(app) as attacker:
        assert login(attacker, "anna").status_code == 303
        planted = attacker.cookies.get("seawatch_session")
    with TestClient(app) as victim:
        victim.cookies.set("seawatch_session", "planted-by-attacker")
        answer = login(victim, "anna")
        token = answer.cookies.get("seawatch_session")
    assert token and token not in ("planted-by-attacker", planted)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_logout_ends_the_session(as_user):
    client, csrf = as_user("anna")
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert client.get("/objects", follow_redirects=False).status_code == 303


def test_failed_logins_are_limited(app):
    with TestClient(app) as client:
        codes = [login(client, "anna", "wrong password!").status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        assert login(client, "anna", PASSWORD).status_code == 429  # even the right one, for now
        assert login(client, "rolf", PASSWORD).status_code == 303  # another account is not


def test_login_needs_the_forms_token(app):
    with TestClient(app) as client:
        answer = client.post(
            "/login", data={"user": "anna", "password": PASSWORD, "login_token": "x"}
        )
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "name",
    ["../seawatch.db", "..%2F..%2Fetc%2Fpasswd", "a" * 64 + ".png/../x", "%00.png", "A" * 64],
)
@pytest.mark.parametrize("route", ["crops", "thumbs"])
def test_crop_names_cannot_reach_outside_the_crop_store(as_user, name, route):
    client, _ = as_user("vera")
    assert client.get(f"/{route}/{name}").status_code == 404


def test_evidence_paths_come_from_the_store_and_stay_under_its_root(as_user, station_files):
    client, _ = as_user("vera")
    db = sqlite3.connect(station_files.store)
    uid = db.execute("SELECT frame_uid FROM otolith LIMIT 1").fetchone()[0]
    assert client.get("/evidence", params={"uid": uid}).headers["content-type"] == "image/jpeg"
    assert client.get("/evidence", params={"uid": "../../seawatch.db"}).status_code == 404
    db.execute("UPDATE otolith SET thumbnail = '../seawatch.db' WHERE frame_uid = ?", (uid,))
    db.commit()
    assert client.get("/evidence", params={"uid": uid}).status_code == 404  # a tampered path


def test_script_in_a_cruise_header_or_a_taxon_name_is_shown_as_text(as_user, station_files):
    db = sqlite3.connect(station_files.store)
    evil = '<script>alert("x")</script>'
    db.execute("UPDATE objects SET cruise = ?, label = ?", (evil, evil))
    db.execute("UPDATE frames SET cruise = ?", (evil,))
    db.commit()
    client, csrf = as_user("ada")
    page = client.get("/objects").text
    assert evil not in page and "&lt;script&gt;" in page
    assert "script-src 'self'" in client.get("/objects").headers["content-security-policy"]
    refused = client.post(
        "/api/taxa", json={"group": "living", "taxon": evil}, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status_code == 422
    assert csrf_of(client) == csrf
