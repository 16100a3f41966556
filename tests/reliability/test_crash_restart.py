"""Crash and restart: SIGKILL at random moments, SIGTERM mid-stream.

The daemon runs as ``seawatch run`` in a child process on the real Tansu broker, with the
local store and VictoriaMetrics (through the durable outbox) as sinks. A killed daemon
flushes nothing and commits nothing, so every kill leaves uncommitted batches behind that
the next run replays; the records are keyed by the frame (uid, and capture time in the
database), so a replay overwrites its own records.

The store's upserts would hide a frame written twice, so the writes are counted where they
happen: a write journal (SQLite triggers in the store, :mod:`tests.write_journal`) and
VictoriaMetrics' raw samples (its export returns every sample it was sent). Replays are
expected after a SIGKILL, but only of what was stored and not yet committed when it came:
at most one poll batch per kill. A double write elsewhere shows as more.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections import Counter

import pytest

from seawatch.models.synthetic_stream import synthetic_stream
from tests.daemon_process import DaemonProcess, daemon_env, stored_count
from tests.integration.helpers import publish_synthetic, read_topic, settings_for
from tests.write_journal import frame_writes, install_write_journal

pytestmark = pytest.mark.integration

FRAMES = 5000
KILLS = 10
DRAIN_LINES = 200  # storage.influx.batch_size: the most lines one kill can make it resend


def _check_store(path, expected: set[str]) -> None:
    with sqlite3.connect(path) as db:
        uids = [row[0] for row in db.execute("SELECT uid FROM frames")]
        # every frame's object rows are exactly the ones its record counts: a replay that
        # added a second set of objects, or lost some, shows here
        uneven = db.execute(
            "SELECT COUNT(*) FROM frames f WHERE n_objects != "
            "(SELECT COUNT(*) FROM objects o WHERE o.frame_uid = f.uid)"
        ).fetchone()[0]
    assert len(uids) == len(set(uids)) == len(expected)
    assert set(uids) == expected
    assert uneven == 0


def _vm_frame_samples(victoria) -> Counter[tuple[str, int]]:
    """Raw samples of the ``frames`` points per (instrument, capture ms): duplicates count."""
    return Counter(
        (series["metric"]["instrument"], ms)
        for series in victoria.export('{__name__="frames_objects"}')
        for ms in series["timestamps"]
    )


def test_ten_sigkills_in_a_5000_frame_stream_lose_and_double_nothing(
    tmp_path, broker, unique, model_dir, victoria
):
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__session_timeout_ms=3000,
        kafka__heartbeat_interval_ms=500,
        storage__influx__url=victoria.url,
        storage__influx__batch_size=DRAIN_LINES,
    )
    store = settings.storage.local.path
    install_write_journal(store)
    start_ns = time.time_ns() - FRAMES * 10**6
    publish_synthetic(settings, FRAMES, seed=5, start_ns=start_ns)
    messages = list(synthetic_stream(FRAMES, seed=5, start_ns=start_ns))
    # offsets committed with every batch: the bound below is one poll batch per kill. By
    # default the alert state (and the commit with it) is written every 5 s, so a kill
    # replays up to 5 s of frames (measured in CI: frames written up to 7 times)
    env = daemon_env(settings, SEAWATCH_ALERTS__STATE_INTERVAL_S="0")
    rng = random.Random(20261123)
    for trial in range(KILLS):
        before = stored_count(store)
        with DaemonProcess(env, tmp_path / f"daemon-{trial}.log") as daemon:
            moment = _kill_at_a_random_moment(daemon, rng, trial, store, before)
        print(f"trial {trial}: killed {moment}; stored {before} -> {stored_count(store)}")
    with DaemonProcess(env, tmp_path / "daemon-final.log") as daemon:
        daemon.wait_for(lambda: stored_count(store) >= FRAMES, 180, "every frame stored")
        points = {(m.meta.instrument, m.meta.captured_at_ns // 10**6): m for m in messages}
        assert len(points) == FRAMES  # one point per frame: raw samples map back to frames
        daemon.wait_for(
            lambda: set(_vm_frame_samples(victoria)) == set(points),
            60,
            "every frame in the database",
        )
        code, seconds = daemon.terminate()
        print(f"final run: SIGTERM exit {code} after {seconds:.1f} s")
        assert code == 0 and seconds < 10, daemon.log()[-3000:]
        assert "Traceback" not in daemon.log()
    _check_store(store, {m.meta.uid for m in messages})
    assert read_topic(broker.bootstrap_servers, settings.kafka.dlq_topic, 1, timeout_s=3) == []

    # Written once, plus replays of what each kill left stored but uncommitted (one poll
    # batch at most): never a second write of a committed frame.
    writes = frame_writes(store)
    assert set(writes) == {m.meta.uid for m in messages}
    replayed = sum(n - 1 for n in writes.values())
    assert replayed <= KILLS * settings.kafka.max_poll_records, Counter(writes.values())
    # In the database: each write's lines delivered once, plus the drain batch in flight at
    # a kill, which is sent again (applied, its answer lost). Nothing else doubles.
    samples = _vm_frame_samples(victoria)
    doubled = sum(n - 1 for n in samples.values())
    assert doubled <= replayed + KILLS * DRAIN_LINES, Counter(samples.values())
    for point, message in points.items():
        assert samples[point] <= writes[message.meta.uid] + KILLS, point
    print(
        f"writes: {len(writes)} frames, {replayed} replayed after kills "
        f"(bound {KILLS * settings.kafka.max_poll_records}); database: {doubled} duplicate "
        f"samples (bound {replayed + KILLS * DRAIN_LINES})"
    )


def _kill_at_a_random_moment(daemon, rng: random.Random, trial: int, store, before: int) -> str:
    """SIGKILL by the clock (start-up, model load, group join, work) or by progress."""
    if trial % 3 == 0:
        delay = rng.uniform(0.5, 6.0)
        time.sleep(delay)
        moment = f"{delay:.1f} s after start"
    else:
        target = min(FRAMES - 1, before + rng.randint(50, 500))
        daemon.wait_for(lambda: stored_count(store) >= target, 120, f"{target} frames")
        time.sleep(rng.uniform(0.0, 0.3))
        moment = f"after frame {target}"
    assert daemon.alive(), daemon.log()[-3000:]
    assert daemon.kill() == -9
    return moment


def test_sigterm_mid_stream_drains_commits_and_exits_within_10_s(
    tmp_path, broker, unique, model_dir
):
    total = 1500
    settings = settings_for(tmp_path, broker, unique, model_dir)
    store = settings.storage.local.path
    install_write_journal(store)
    publish_synthetic(settings, total, seed=8)
    env = daemon_env(settings)
    with DaemonProcess(env, tmp_path / "first.log") as daemon:
        daemon.wait_for(lambda: stored_count(store) >= 300, 120, "300 frames")
        code, seconds = daemon.terminate()
        first = _stopped_frames(daemon.log())
    print(f"SIGTERM mid-stream: exit {code} after {seconds:.1f} s, {first} frames stored")
    assert code == 0 and seconds < 10
    assert 300 <= first < total and stored_count(store) == first
    # Everything stored was committed, and nothing uncommitted was stored: a second run
    # handles exactly the rest, with no replay.
    with DaemonProcess(env, tmp_path / "second.log") as daemon:
        daemon.wait_for(lambda: stored_count(store) >= total, 120, "every frame")
        code, _ = daemon.terminate()
        assert code == 0 and _stopped_frames(daemon.log()) == total - first
    writes = frame_writes(store)  # across both runs, every frame written exactly once
    assert len(writes) == total and set(writes.values()) == {1}, Counter(writes.values())


def _stopped_frames(log: str) -> int:
    match = re.search(r"stopped frames=(\d+)", log)
    assert match, log[-3000:]
    return int(match.group(1))


def test_sigterm_with_the_database_down_still_exits_within_10_s_and_keeps_the_lines(
    tmp_path, broker, unique, model_dir
):
    from seawatch.ingest.broker import free_port

    settings = settings_for(
        tmp_path, broker, unique, model_dir, storage__influx__url=f"http://127.0.0.1:{free_port()}"
    )
    publish_synthetic(settings, 200, seed=9)
    store = settings.storage.local.path
    with DaemonProcess(daemon_env(settings), tmp_path / "daemon.log") as daemon:
        daemon.wait_for(lambda: stored_count(store) >= 200, 120, "200 frames")
        code, seconds = daemon.terminate()
        log = daemon.log()
    print(f"SIGTERM with InfluxDB down: exit {code} after {seconds:.1f} s")
    assert code == 0 and seconds < 10, log[-3000:]
    left = re.search(r"outbox_left lines=(\d+)", log)
    assert left and int(left.group(1)) > 200  # every frame's lines wait for the next start
