"""An automatic merge made by the daemon's shared gallery on the real broker (two workers
enrol one stranger: twins), reviewed in the station: undoing it writes the unmerge record to
the gallery topic, and every worker, running or started afresh, applies it (its gallery no
longer resolves the id to the survivor; its store's ``fish_merges`` survivor is NULL); the
verdict also reaches the ``reviews`` topic."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from seawatch.config import KafkaSettings
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.review.gallery_sender import UNDO, pending_writes, send_pending
from seawatch.review.merge_reviews import decide_merge, ensure_review_tables, pending_merges
from seawatch.review.publish import publish_pending
from seawatch.storage.fish_merges import TWIN, FishMerges, read_merges
from tests.integration.helpers import read_topic
from tests.review.station_data import build_station
from tests.scaleout.gallery_workers import enrol, store_worker, sync_until

pytestmark = pytest.mark.integration

DIM = 8


def test_an_undone_twin_merge_reaches_every_worker(tmp_path, broker, unique):
    files = build_station(tmp_path, plankton=4)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topic = f"t{unique}.fish-gallery"
    a = store_worker(kafka, topic, files.store, "a")  # the worker beside the station's store
    b = store_worker(kafka, topic, tmp_path / "b.db", "b")
    a.sync(), b.sync()
    fish = np.eye(DIM)[0]
    late = enrol(a, fish, "cam-1@200", 200)
    early = enrol(b, fish + 0.2 * np.eye(DIM)[1], "cam-2@100", 100)
    sync_until(a, lambda: a.gallery.resolve(late) == early, "a to merge its twin")
    sync_until(b, lambda: late in b.gallery and b.gallery.resolve(late) == early, "b")
    assert read_merges(tmp_path / "b.db") == {late: early}

    db = sqlite3.connect(files.store, isolation_level=None)
    ensure_review_tables(db)
    (merge,) = pending_merges(db)
    assert (merge.individual, merge.survivor, merge.rule, merge.merged_by) == (
        late, early, TWIN, "a"
    )  # fmt: skip
    decide_merge(db, "rolf", late, merge.merged_at_us, merge.version, "undo")
    assert read_merges(files.store) == {}
    gallery_log = GalleryLog(kafka, topic, create=False)  # as the station's sender opens it
    try:
        latest: dict[str, bytes | None] = {}
        (write,) = pending_writes(db)
        assert (write.action, write.individual, write.user) == (UNDO, late, "rolf")
        assert send_pending(db, gallery_log, latest) == 1
        assert pending_writes(db) == []
        assert send_pending(db, gallery_log, latest) == 0  # sent once
    finally:
        gallery_log.close()

    sync_until(b, lambda: b.gallery.resolve(late) == late, "b to apply the unmerge")
    sync_until(a, lambda: a.gallery.resolve(late) == late, "a to apply the unmerge")
    assert read_merges(tmp_path / "b.db") == {} and read_merges(files.store) == {}
    b_merges = FishMerges(tmp_path / "b.db")
    (row,) = [m for m in b_merges.all() if m.individual == late]
    b_merges.close()
    assert row.survivor is None and row.merged_by == "review:rolf"
    fresh = store_worker(kafka, topic, tmp_path / "c.db", "c")  # a worker started afterwards
    fresh.sync()
    assert fresh.gallery.resolve(late) == late and read_merges(tmp_path / "c.db") == {}
    assert pending_merges(db) == []  # no worker merged them again
    for worker in (a, b, fresh):
        worker.close()

    reviews = f"reviews-{unique}"
    ensure_topics(broker.bootstrap_servers, [reviews], 1)
    publisher = Publisher(broker.bootstrap_servers)
    try:
        assert publish_pending(db, publisher, reviews) == 1
    finally:
        publisher.close()
    (message,) = read_topic(broker.bootstrap_servers, reviews, 1, settle_s=1.0)
    assert message.key.decode() == f"fish-merge:{late}"
    value = json.loads(message.value)
    assert (value["action"], value["user"], value["after"]["survivor"]) == ("undo", "rolf", None)
    db.close()
