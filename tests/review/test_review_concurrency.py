"""Five people deciding on the same pages at once, on the real server (``seawatch review
serve`` as a child process): no update is lost, every conflict is refused and reported,
and the audit trail holds every decision, in a consistent chain per object.

Each simulated user logs in through the form, loads one of three overlapping pages (20
objects each, one cruise by confidence), then makes 1-3 decisions on objects of that page
with the versions the page showed (so some are stale by then: others, or the user's own
earlier decision, moved them on) before loading a page again. The run lasts
``SEAWATCH_REVIEW_SOAK_S`` seconds (20 by default; the issue's figure is 300).
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx  # httpx2 is what starlette tests with (the dev extra)
import pytest

from seawatch.ingest.broker import free_port, wait_for_port
from seawatch.review.accounts import Accounts, Role
from tests.review.station_data import PASSWORD, TAXA, build_station

DURATION_S = float(os.environ.get("SEAWATCH_REVIEW_SOAK_S", "20"))
USERS = {"ines": Role.ANNOTATOR, "otto": Role.ANNOTATOR, "pia": Role.ANNOTATOR,
         "rolf": Role.REVIEWER, "ada": Role.ADMIN}  # fmt: skip
PAGES = 3  # pages 0-2 of 20: 60 objects for five people
CELL = re.compile(r'data-uid="([^"]+)" data-idx="(\d+)" data-version="(\d+)"')
ACTIONS = ("validate", "dubious", "reassign")


@dataclass
class Answer:
    """One decision as a client sent it and what the server said."""

    user: str
    action: str
    taxon: str | None
    seen: dict[str, int]  # subject -> version seen
    status: int
    applied: list[str] = field(default_factory=list)
    stale: list[dict] = field(default_factory=list)
    detail: str = ""  # the body of any other answer


@pytest.fixture
def server(tmp_path: Path):
    """The review station serving a small store, five annotators and up; its base URL."""
    files = build_station(tmp_path)
    accounts = Accounts(files.accounts)
    for name, role in USERS.items():
        accounts.add_user(name, PASSWORD, role)
    accounts.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWATCH_")}
    env |= {
        "SEAWATCH_STORAGE__LOCAL__PATH": str(files.store),
        "SEAWATCH_REVIEW__ACCOUNTS_PATH": str(files.accounts),
        "SEAWATCH_REVIEW__PUBLISH_TOPIC": "",  # no Kafka here: decisions stay in the store
        "SEAWATCH_REVIEW__PAGE_SIZE": "20",
    }
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "seawatch", "review", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port, 30)
        yield f"http://127.0.0.1:{port}", files.store
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        text = (tmp_path / "serve.log").read_text(errors="replace")
        assert "Traceback" not in text, text


def _login(base: str, user: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=60)
    token = re.search(r'name="login_token" value="([0-9a-f]+)"', client.get("/login").text)[1]
    answer = client.post("/login", data={"user": user, "password": PASSWORD, "login_token": token})
    assert answer.status_code == 303, answer.text
    page = client.get("/objects")
    return client, re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)[1]


def _user(base: str, user: str, deadline: float, seed: int, out: list[Answer], errors: list):
    """One person: load a page, decide 1-3 times on what it showed, again until the end."""
    rng = random.Random(seed)
    try:
        client, csrf = _login(base, user)
        try:
            while time.monotonic() < deadline:
                params = {"cruise": "MSM-120", "order": "confidence", "page": rng.randrange(PAGES)}
                page = client.get("/objects", params=params)
                assert page.status_code == 200, page.text
                cells = [(u, int(i), int(v)) for u, i, v in CELL.findall(page.text)]
                for _ in range(rng.randint(1, 3)):
                    picked = rng.sample(cells, rng.randint(1, 4))
                    action = rng.choice(ACTIONS)
                    taxon = rng.choice(TAXA) if action == "reassign" else None
                    items = [{"uid": u, "idx": i, "version": v} for u, i, v in picked]
                    body = {"action": action, "items": items, "taxon": taxon}
                    r = client.post(
                        "/api/objects/decide", json=body, headers={"X-CSRF-Token": csrf}
                    )
                    seen = {f"object:{u}#{i}": v for u, i, v in picked}
                    answer = Answer(user, action, taxon, seen, r.status_code)
                    if r.status_code in (200, 409):
                        answer.applied, answer.stale = r.json()["applied"], r.json()["stale"]
                    else:
                        answer.detail = r.text[:300]
                    out.append(answer)
        finally:
            client.close()
    except Exception as exc:  # reported by the test, not lost in a thread
        errors.append((user, repr(exc)))


def _audit(store: Path):
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    trail = defaultdict(list)
    rows = db.execute(
        "SELECT subject, action, user, before, after FROM decisions "
        "WHERE subject LIKE 'object:%' ORDER BY id"
    )
    for subject, action, user, before, after in rows:
        trail[subject].append((action, user, json.loads(before), json.loads(after)))
    objects = {
        f"object:{uid}#{idx}": (label, status, version, by)
        for uid, idx, label, status, version, by in db.execute(
            "SELECT frame_uid, idx, label, status, version, reviewed_by FROM objects"
        )
    }
    db.close()
    return trail, objects


def _check_answers(answers: list[Answer]) -> Counter:
    """Every item is either applied or refused as stale, and a refusal says why."""
    counts: Counter = Counter()
    for a in answers:
        counts[a.status] += 1
        if a.status not in (200, 409):
            continue
        refused = {s["subject"]: s for s in a.stale}
        assert set(a.applied) | set(refused) == set(a.seen), a
        assert not set(a.applied) & set(refused), a
        assert (a.status == 409) == bool(refused), a
        for subject, stale in refused.items():
            assert stale["seen_version"] == a.seen[subject], a
            assert stale["version"] > stale["seen_version"], a  # moved on, not just different
        counts["applied"] += len(a.applied)
        counts["refused"] += len(refused)
    return counts


def _check_trail(answers: list[Answer], trail: dict, objects: dict) -> None:
    """Told applied == version == audit rows, per object; each applied decision is the audit
    row that moved the object from the version its user saw (no update lost)."""
    told: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        for subject in a.applied:
            told[subject].append(a)
    assert set(trail) == set(told), "audit rows without an applied answer, or the reverse"
    for subject, (label, status, version, by) in objects.items():
        rows = trail.get(subject, [])
        assert len(told[subject]) == version == len(rows), (subject, version, len(rows))
        previous = None
        for _action, _user, before, after in rows:
            if previous is not None:
                assert before == previous, (subject, before, previous)  # a chain, no gap
            assert after["version"] == before["version"] + 1
            previous = after
        if rows:
            assert rows[0][2]["version"] == 0
            assert previous == {"label": label, "status": status, "version": version}
            assert by == rows[-1][1]
        moves = sorted((b["version"], act, u) for act, u, b, _ in rows)
        claimed = sorted((a.seen[subject], a.action, a.user) for a in told[subject])
        assert claimed == moves, (subject, claimed, moves)


@pytest.mark.slow
def test_five_users_deciding_on_overlapping_pages_lose_nothing(server):
    base, store = server
    deadline = time.monotonic() + DURATION_S
    answers: list[Answer] = []
    errors: list = []
    threads = [
        threading.Thread(target=_user, args=(base, name, deadline, seed, answers, errors))
        for seed, name in enumerate(USERS)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION_S + 120)
    elapsed = time.monotonic() - started
    assert not errors, errors
    counts = _check_answers(answers)
    trail, objects = _audit(store)
    _check_trail(answers, trail, objects)
    server_errors = {s: n for s, n in counts.items() if isinstance(s, int) and s >= 500}
    summary = {
        "seconds": round(elapsed, 1),
        "requests": len(answers),
        "applied": counts["applied"],
        "refused_stale": counts["refused"],
        "responses_409": counts[409],
        "busy_503": counts[503],
        "objects_decided": len(trail),
        "audit_rows": sum(len(r) for r in trail.values()),
    }
    print(f"\nreview concurrency: {json.dumps(summary)}")
    details = Counter(a.detail for a in answers if a.status >= 500)
    assert not server_errors, f"server errors: {server_errors} {dict(details)} ({summary})"
    assert set(counts) <= {200, 409, "applied", "refused"}, counts
    assert counts["applied"] > 20 and counts["refused"] > 0, summary  # both paths were taken
