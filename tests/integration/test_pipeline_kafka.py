"""The daemon end to end on the real Tansu broker: nothing lost, nothing doubled."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from seawatch.daemon import build_daemon
from tests.integration.helpers import (
    publish_synthetic,
    read_topic,
    run_until,
    settings_for,
    stored_uids,
)
from tests.write_journal import frame_writes, install_write_journal

pytestmark = pytest.mark.integration


def test_every_published_frame_has_exactly_one_record(tmp_path, broker, unique, model_dir):
    """One record per frame, and each written once: the store's upsert would hide a second
    write of a frame, the write journal does not."""
    settings = settings_for(tmp_path, broker, unique, model_dir)
    install_write_journal(settings.storage.local.path)
    n = 300
    broken = publish_synthetic(settings, n, full_share=0.1)
    assert broken == 0
    stats = run_until(settings, n)
    uids = stored_uids(settings.storage.local.path)
    assert len(uids) == n
    assert frame_writes(settings.storage.local.path) == dict.fromkeys(uids, 1)
    assert stats.frames == n and stats.dead_letters == 0
    # full frames were segmented into many objects, ROI frames into one each
    assert stats.objects > n


def test_inline_inference_stores_every_frame_on_the_loop_thread(
    tmp_path, broker, unique, model_dir
):
    """``max_batches_in_flight`` 0: one thread per worker, same records, no inference thread."""
    settings = settings_for(tmp_path, broker, unique, model_dir, inference__max_batches_in_flight=0)
    n = 200
    publish_synthetic(settings, n, seed=3, full_share=0.1, broken_share=0.05)
    names: set[str] = set()

    def done(stats) -> bool:
        names.update(t.name for t in threading.enumerate())
        return stats.processed >= n

    daemon = build_daemon(settings)
    try:
        stats = daemon.run(done)
    finally:
        daemon.close()
    uids = stored_uids(settings.storage.local.path)
    assert len(uids) == len(set(uids)) == stats.frames == n - stats.dead_letters
    assert stats.dead_letters > 0 and stats.objects > stats.frames
    assert not any(name.startswith("infer") for name in names), names


def test_no_poll_waits_idle_while_a_batch_is_in_flight(tmp_path, broker, unique, model_dir):
    """A poll that finds nothing returns at once while batches are in flight, so finished
    results are stored without sitting through an idle fetch (Tansu holds a fetch for its
    whole ``fetch_max_wait_ms``)."""
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__max_poll_records=40,
        kafka__fetch_max_wait_ms=300,
    )
    n = 200
    publish_synthetic(settings, n, seed=4)
    daemon = build_daemon(settings)
    pipeline, polls = daemon.pipeline, []
    submitted, stored = [0], [0]
    poll, submit, store = pipeline.source.poll_batch, pipeline._submit, pipeline._store_and_commit

    def spy_poll(max_records, max_wait_ms, idle_ms=200):
        polls.append((idle_ms, submitted[0] - stored[0]))
        return poll(max_records, max_wait_ms, idle_ms)

    def spy_submit(batch):
        submitted[0] += 1
        return submit(batch)

    def spy_store(batch):
        store(batch)
        stored[0] += 1

    pipeline.source.poll_batch, pipeline._submit = spy_poll, spy_submit
    pipeline._store_and_commit = spy_store
    try:
        stats = daemon.run(lambda s: s.processed >= n)
    finally:
        daemon.close()
    assert stats.processed == n
    assert any(outstanding for _, outstanding in polls)  # batches were in flight at polls
    assert all(idle == 0 for idle, outstanding in polls if outstanding), polls
    assert any(idle > 0 for idle, outstanding in polls if not outstanding)


def _run_slow(settings, n: int, seed: int, infer_s: float) -> tuple:
    """Publish ``n`` frames, run the daemon with every batch's inference ``infer_s`` slower
    until all are stored; return its stats and the gaps between polls: from the end of one
    poll to the start of the next (up to the last frame stored: that gap counts too). A poll
    itself may last (while the member joins its group, an idle one waits out the join)."""
    publish_synthetic(settings, n, seed=seed)
    daemon = build_daemon(settings)
    pipeline, polls, done = daemon.pipeline, [], []
    poll, infer = pipeline.source.poll_batch, pipeline._infer

    def spy_poll(max_records, max_wait_ms, idle_ms=200):
        started = time.monotonic()
        try:
            return poll(max_records, max_wait_ms, idle_ms)
        finally:
            polls.append((started, time.monotonic()))

    def slow_infer(batch):
        time.sleep(infer_s)
        return infer(batch)

    def all_stored(stats) -> bool:
        if stats.processed >= n and not done:
            done.append(time.monotonic())
        return stats.processed >= n

    pipeline.source.poll_batch, pipeline._infer = spy_poll, slow_infer
    try:
        stats = daemon.run(all_stored)
    finally:
        daemon.close()
    starts = [start for start, _ in polls[1:]] + [done[0]]
    return stats, [start - end for (_, end), start in zip(polls, starts, strict=True)]


def _assert_stored_once(settings, stats, n: int) -> None:
    """No batch replayed (a dropped member's would be) and every frame stored once."""
    assert stats.processed == n, "a dropped member replays batches: processed would exceed n"
    uids = stored_uids(settings.storage.local.path)
    assert len(uids) == len(set(uids)) == n


def test_a_slow_model_does_not_keep_the_loop_from_polling(tmp_path, broker, unique, model_dir):
    """A window of slow batches (here 9 x 0.4 s, all in flight once the topic is read) takes
    longer than the group's ``max_poll_interval_ms`` (2 s): the loop drains it at most half
    that long before it polls again, so the member stays in its group (a member that does not
    poll in time is dropped: its commits fail and its batches are replayed)."""
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__max_poll_records=20,
        kafka__max_poll_interval_ms=2000,
    )
    n = 200
    stats, gaps = _run_slow(settings, n, seed=5, infer_s=0.4)
    assert max(gaps) < 1.6, f"the loop stayed {max(gaps):.1f} s away from poll()"
    _assert_stored_once(settings, stats, n)


def test_a_batch_slower_than_the_poll_interval_keeps_the_member_in_its_group(
    tmp_path, broker, unique, model_dir
):
    """Each batch here takes 2.5 s, longer than the group's whole ``max_poll_interval_ms``
    (2 s), and the window holds one: waiting on it, the loop polls with the partitions
    paused every second, so the member stays in its group, every commit succeeds and no batch
    is replayed (found with the eight-view otolith model: 64 specimens a batch took 7 s)."""
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__max_poll_records=20,
        kafka__max_poll_interval_ms=2000,
        inference__max_batches_in_flight=1,  # one batch at a time: the wait itself is long
    )
    n = 60
    stats, gaps = _run_slow(settings, n, seed=6, infer_s=2.5)
    assert max(gaps) < 1.6, f"the loop stayed {max(gaps):.1f} s away from poll()"
    assert stats.keep_alive_polls >= 2  # it had to: each batch outlasts the interval
    _assert_stored_once(settings, stats, n)


def test_restart_continues_from_committed_offsets(tmp_path, broker, unique, model_dir):
    # One batch in flight: a stop asked for at n // 3 drains at most two more batches, so the
    # first run cannot finish the topic (with the default 8 x 40 in flight on a loaded
    # machine it could, and the second run would have nothing to prove).
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__max_poll_records=40,
        inference__max_batches_in_flight=1,
    )
    n = 400
    publish_synthetic(settings, n, seed=1)
    first = run_until(settings, n // 3)
    assert n // 3 <= first.processed < n
    second = run_until(settings, n - first.processed)
    # a graceful stop commits everything it stored: the second run starts exactly there
    assert first.processed + second.processed == n
    uids = stored_uids(settings.storage.local.path)
    assert len(uids) == len(set(uids)) == n


def test_broken_frames_land_in_the_dlq_with_their_reason(tmp_path, broker, unique, model_dir):
    settings = settings_for(tmp_path, broker, unique, model_dir)
    n = 200
    broken = publish_synthetic(settings, n, seed=2, broken_share=0.1)
    assert broken > 8
    stats = run_until(settings, n)
    assert stats.dead_letters == broken
    assert len(stored_uids(settings.storage.local.path)) == n - broken
    dead = read_topic(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, broken)
    assert len(dead) == broken
    reasons = Counter()
    for record in dead:
        headers = dict(record.headers)
        assert headers["error-stage"] in {b"headers", b"decode"}
        assert headers["error"]
        assert headers["source"].startswith(settings.kafka.topics[0].encode())
        reasons[headers["error-stage"]] += 1
        # the original value travels with the reason
        assert record.value
    errors = b" ".join(dict(r.headers)["error"] for r in dead)
    assert b"content-type" in errors and b"lat" in errors
    assert reasons[b"decode"] > 0 and reasons[b"headers"] > 0


def test_the_daemon_holds_opencv_to_its_configured_threads(tmp_path, broker, unique, model_dir):
    import cv2

    before = cv2.getNumThreads()
    try:
        for wanted in (1, 2):
            cv2.setNumThreads(3)
            settings = settings_for(
                tmp_path, broker, unique, model_dir, ingest__opencv_threads=wanted
            )
            build_daemon(settings).close()
            assert cv2.getNumThreads() == wanted
    finally:
        cv2.setNumThreads(before)


@pytest.mark.parametrize(("max_batch", "expected"), [(None, 8), (4, 4)])
def test_otolith_calls_hold_fewer_specimens(
    tmp_path, broker, unique, model_dir, otolith_model_dir, max_batch, expected
):
    """The otolith model runs eight views of every specimen: its calls hold
    ``tasks.otolith.max_batch`` specimens (8 by default: 64 images a call ran fastest), not
    the ``inference.max_batch`` of 64 inputs."""
    overrides = {} if max_batch is None else {"tasks__otolith__max_batch": max_batch}
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        tasks__otolith__model_dir=str(otolith_model_dir),
        inference__max_batch=64,
        **overrides,
    )
    daemon = build_daemon(settings)
    try:
        assert daemon.pipeline.router.heads["otolith"].max_batch == expected
    finally:
        daemon.close()
