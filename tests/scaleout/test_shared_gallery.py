"""The shared gallery on the real broker, in one process: what one worker enrols another
reads, provisional twins merge the same way on both, a fresh worker answers a replayed frame
as the first one did, and merges are kept in the local store."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest

from seawatch.config import KafkaSettings
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.shared_gallery import SharedGallery
from seawatch.storage.fish_merges import FishMerges, read_merges
from tests.scaleout.fish_stream import read_gallery_topic
from tests.scaleout.gallery_workers import enrol, sync_until

pytestmark = pytest.mark.integration

DIM = 8


def _worker(broker, topic: str, tmp_path, name: str) -> SharedGallery:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    return SharedGallery(
        Gallery(DIM),
        functools.partial(GalleryLog, kafka, topic, create=True),
        threshold=0.5,
        model="test",
        export_path=tmp_path / f"{name}-gallery.npz",
        merges=FishMerges(tmp_path / f"{name}.db"),
        worker=name,
    )


def _records(broker, topic: str) -> list[tuple[str, dict | None, int]]:
    """The topic's records with their offsets, each key's first one first."""
    first_at: dict[str, tuple[int, int]] = {}
    records = read_gallery_topic(broker.bootstrap_servers, topic, first_at=first_at)
    seen: set[str] = set()
    out = []
    for key, value in records:
        if key not in seen:
            seen.add(key)
            out.append((key, value, first_at[key][1]))
    return out


def test_twins_merge_alike_on_both_workers_and_a_fresh_one_replays(tmp_path, broker, unique):
    topic = f"t{unique}.fish-gallery"
    a, b = _worker(broker, topic, tmp_path, "a"), _worker(broker, topic, tmp_path, "b")
    a.sync(), b.sync()  # both read the (empty) topic before either enrols: concurrent twins
    fish = np.eye(DIM)[0]
    twin = fish + 0.2 * np.eye(DIM)[1]  # the same stranger, another sighting (cosine 0.98)
    late = enrol(a, fish, "cam-1@200", 200)
    early = enrol(b, twin, "cam-2@100", 100)
    stranger = enrol(b, np.eye(DIM)[5], "cam-2@300", 300)  # unlike both: never merged
    sync_until(a, lambda: a.gallery.resolve(late) == early, "a to merge its twin")
    sync_until(b, lambda: late in b.gallery and b.gallery.resolve(late) == early, "b")
    assert a.gallery.resolve(stranger) == stranger and b.gallery.resolve(stranger) == stranger
    assert a.twins_merged == 1  # the later enrolment (capture time) into the earlier
    # a read b's records through polls between its syncs (the tail), not a read after a pause
    assert a.syncs["polled"] > 0 and a.tail_lags_s and max(a.tail_lags_s) < 10
    # each twin was enrolled not knowing of the other (a race): what each writer had read
    first = {k: (v, o) for k, v, o in _records(broker, topic) if v and v["kind"] == "individual"}
    assert first[late][0]["read_to"]["0"] <= first[early][1]
    assert first[early][0]["read_to"]["0"] <= first[late][1]
    known = enrol(a, np.eye(DIM)[6], "cam-1@400", 400)  # a, having read both, enrols again
    first = {k: (v, o) for k, v, o in _records(broker, topic) if v and v["kind"] == "individual"}
    assert first[known][0]["read_to"]["0"] > max(first[late][1], first[early][1])

    fresh = _worker(broker, topic, tmp_path, "c")  # a new worker, or this one restarted
    fresh.sync()
    assert set(fresh.gallery.ids) == {late, early, stranger, known}
    assert fresh.gallery.resolve(late) == early
    replay = fresh.gallery.seen("cam-1@200")  # the frame that enrolled `late`, replayed
    assert replay is not None and replay.individual == late and replay.new_individual

    for worker in (a, b, fresh):
        worker.close()
    for name in ("a", "b", "c"):
        exported = Gallery.load(tmp_path / f"{name}-gallery.npz")
        assert set(exported.ids) == {late, early, stranger, known}
        assert exported.resolve(late) == early
        assert read_merges(tmp_path / f"{name}.db") == {late: early}


_STOP_WITHOUT_BROKER = """
import sys, time, functools
from pathlib import Path
import numpy as np
from seawatch.config import KafkaSettings
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.shared_gallery import SharedGallery
out = Path(sys.argv[1])
with EmbeddedBroker() as broker:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    log = functools.partial(GalleryLog, kafka, "fish-gallery", create=True)
    shared = SharedGallery(Gallery(8), log, threshold=0.5, model="m", export_path=out)
    shared.sync()
    entry = shared.gallery.enrol_new(np.eye(8)[0], source="cam@1", first_seen_ns=1)
    shared.publish([(entry.id, True, SightingSource("cam@1", 1))])
    broker.stop()
    started = time.monotonic()
    shared.close()
    print(entry.id, round(time.monotonic() - started, 1))
"""


def test_a_worker_stopping_while_the_broker_is_gone_still_exports(tmp_path):
    """In a child process: kafka-python keeps the sockets of its reconnect tries to a dead
    broker open past close(), which this session's warnings-are-errors would report."""
    export = tmp_path / "gallery.npz"
    done = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c", _STOP_WITHOUT_BROKER, export],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    enrolled, seconds = done.stdout.split()
    assert "fish_gallery_final_read_failed" in done.stderr
    assert float(seconds) < 10 and enrolled in Gallery.load(export)


_BROKER_AWAY = """
import sys, threading, time, functools
import numpy as np
from seawatch.config import KafkaSettings
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.shared_gallery import SharedGallery
with EmbeddedBroker() as broker:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, connect_timeout_ms=2000)
    log = functools.partial(GalleryLog, kafka, "fish-gallery", create=True)
    shared = SharedGallery(Gallery(8), log, threshold=0.5, model="m")
    shared.sync()
    broker.stop()
    started = time.monotonic()
    entry = shared.gallery.enrol_new(np.eye(8)[0], source="cam@1", first_seen_ns=1)
    kept = [(entry.id, True, SightingSource("cam@1", 1))]
    publishing = threading.Thread(target=shared.publish, args=(kept,))  # waits, sends again
    publishing.start()
    time.sleep(7.0)
    broker.start()  # back, empty (memory storage); from this thread: the broker dies with
    publishing.join()  # the thread that started it
    waited = time.monotonic() - started
    fresh = SharedGallery(Gallery(8), log, threshold=0.5, model="m")
    fresh.sync()
    print(entry.id in fresh.gallery, round(waited, 1))
    shared.close(), fresh.close()
"""


def test_an_enrolment_waits_for_a_broker_that_is_away_and_is_sent_again(tmp_path):
    """The worker stays alive through a broker outage (as for dead letters): the flush waits
    and sends again; in a child process for kafka-python's leftover sockets."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c", _BROKER_AWAY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    readable, waited = done.stdout.split()
    assert "fish_gallery_unacknowledged" in done.stderr
    assert readable == "True" and 6 < float(waited) < 30
