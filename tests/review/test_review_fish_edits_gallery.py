"""A person's merge and rename on the fish page reach the daemon's shared gallery on the real
broker: the review station's sender writes them to the gallery topic, and every worker,
running or started afresh, reports later sightings of the merged id as its survivor and of
the renamed id under its new name; a decision made while the broker is away waits in the
store and is sent when it returns."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sqlite3
import time

import numpy as np
import pytest

from seawatch.config import KafkaSettings
from seawatch.models.fish.decide_alone import decide_alone
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.shared_gallery import SharedGallery
from seawatch.review.decisions import decide_fish, individual_version
from seawatch.review.gallery_sender import GallerySender, pending_writes, send_pending
from seawatch.review.merge_reviews import ensure_review_tables, pending_merges
from seawatch.storage.fish_merges import PERSON, FishMerges, read_merges
from tests.review.station_data import add_fish_sightings, build_station
from tests.scaleout.gallery_workers import enrol, store_worker, sync_until

pytestmark = pytest.mark.integration

DIM = 8
FISH = np.eye(DIM)  # three strangers, unlike each other (no twins)


def _reported(worker: SharedGallery, view: np.ndarray) -> str:
    """The id a later sighting with ``view`` is reported under (the fish head's rule)."""
    (sighting,) = decide_alone(worker.gallery, view[None], lambda: 0.5, enrol_new=False)
    return sighting.individual


def _decide(db, name: str, action: str, target: str) -> None:
    outcome = decide_fish(db, "rolf", name, individual_version(db, name), action, target=target)
    assert outcome.applied == [f"fish:{name}"]


def test_a_persons_merge_and_rename_reach_every_worker(tmp_path, broker, unique):
    files = build_station(tmp_path, plankton=4)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topic = f"t{unique}.fish-gallery"
    a = store_worker(kafka, topic, files.store, "a")  # the worker beside the station's store
    b = store_worker(kafka, topic, tmp_path / "b.db", "b")
    a.sync(), b.sync()
    p = enrol(a, FISH[0], "cam-1@100", 100)
    q = enrol(b, FISH[1], "cam-2@200", 200)
    r = enrol(a, FISH[2], "cam-1@300", 300)
    sync_until(a, lambda: q in a.gallery, "a to read q")
    sync_until(b, lambda: p in b.gallery and r in b.gallery, "b to read p and r")
    add_fish_sightings(files.store, [p, q, r])

    db = sqlite3.connect(files.store, isolation_level=None)
    ensure_review_tables(db)
    _decide(db, p, "merge", q)
    _decide(db, r, "rename", "Nemo")
    assert [w.action for w in pending_writes(db)] == ["merge", "rename"]
    gallery_log = GalleryLog(kafka, topic, create=False)  # as the station's sender opens it
    try:
        latest: dict[str, bytes | None] = {}
        assert send_pending(db, gallery_log, latest) == 3  # p's merge; Nemo, then r into it
        assert pending_writes(db) == []
        assert send_pending(db, gallery_log, latest) == 0  # sent once
    finally:
        gallery_log.close()

    fresh = None
    try:
        for worker in (b, a):
            sync_until(
                worker,
                lambda w=worker: w.gallery.resolve(p) == q and w.gallery.resolve(r) == "Nemo",
                f"{worker.worker} to apply the merge and the rename",
            )
            assert _reported(worker, FISH[0]) == q and _reported(worker, FISH[2]) == "Nemo"
            assert not worker.gallery.entry("Nemo").provisional
        assert read_merges(tmp_path / "b.db") == {p: q, r: "Nemo"} == read_merges(files.store)
        b_merges = FishMerges(tmp_path / "b.db")
        rows = {m.individual: m for m in b_merges.all()}
        b_merges.close()
        assert {(rows[i].rule, rows[i].merged_by) for i in (p, r)} == {(PERSON, "review:rolf")}
        assert pending_merges(db) == []  # a person's merges are not queued for review
        fresh = store_worker(kafka, topic, tmp_path / "c.db", "c")  # a worker started afterwards
        fresh.sync()
        assert _reported(fresh, FISH[0]) == q and _reported(fresh, FISH[2]) == "Nemo"
    finally:
        for worker in (a, b, fresh):
            if worker is not None:
                worker.close()
        db.close()


def test_an_edit_decided_while_the_broker_is_away_is_sent_when_it_returns(
    tmp_path, broker, unique, caplog
):
    caplog.set_level(logging.INFO, logger="seawatch.review.gallery_sender")
    files = build_station(tmp_path, plankton=4)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, connect_timeout_ms=1000)
    topic = f"t{unique}.fish-gallery"
    a = store_worker(kafka, topic, files.store, "a")
    a.sync()
    p, q = enrol(a, FISH[0], "cam-1@100", 100), enrol(a, FISH[1], "cam-1@200", 200)
    add_fish_sightings(files.store, [p, q])
    open_log = functools.partial(GalleryLog, kafka, topic, create=False)
    sender = GallerySender(files.store, open_log, every_s=0.1).start()
    db = sqlite3.connect(files.store, isolation_level=None)
    ensure_review_tables(db)
    os.kill(broker.pid, signal.SIGSTOP)  # away: connections hang, nothing is answered
    try:
        _decide(db, p, "merge", q)
        time.sleep(3.0)
        assert [w.individual for w in pending_writes(db)] == [p]  # kept while it is away
        assert sender.gallery_log is None and "fish_gallery_edits_deferred" in caplog.text
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    try:
        deadline = time.monotonic() + 15
        while pending_writes(db):
            assert time.monotonic() < deadline, "the sender did not send the merge"
            time.sleep(0.1)
        sync_until(a, lambda: a.gallery.resolve(p) == q, "a to apply the merge")
        assert _reported(a, FISH[0]) == q
        assert "fish_gallery_edits_sent records=1" in caplog.text
    finally:
        sender.close()
        a.close()
        db.close()
