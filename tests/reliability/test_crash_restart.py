"""Crash and restart: SIGKILL at random moments, SIGTERM mid-stream.

The daemon runs as ``seawatch run`` in a child process on the real Tansu broker, with the
local store and VictoriaMetrics (through the durable outbox) as sinks. A killed daemon
flushes nothing and commits nothing, so every kill leaves uncommitted batches behind that
the next run replays; the records are keyed by the frame (uid, and capture time in the
database), so a replay overwrites its own records.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time

import pytest

from seawatch.models.synthetic_stream import synthetic_stream
from tests.daemon_process import DaemonProcess, daemon_env, stored_count
from tests.integration.helpers import publish_synthetic, read_topic, settings_for

pytestmark = pytest.mark.integration

FRAMES = 5000
KILLS = 10


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


def _vm_frame_times(victoria) -> dict[str, set[int]]:
    """Capture times (ms) of the ``frames`` points per instrument, as VictoriaMetrics holds them."""
    times: dict[str, set[int]] = {}
    for series in victoria.export('{__name__="frames_objects"}'):
        times.setdefault(series["metric"]["instrument"], set()).update(series["timestamps"])
    return times


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
    )
    start_ns = time.time_ns() - FRAMES * 10**6
    publish_synthetic(settings, FRAMES, seed=5, start_ns=start_ns)
    messages = list(synthetic_stream(FRAMES, seed=5, start_ns=start_ns))
    env = daemon_env(settings)
    store = settings.storage.local.path
    rng = random.Random(20261123)
    for trial in range(KILLS):
        before = stored_count(store)
        with DaemonProcess(env, tmp_path / f"daemon-{trial}.log") as daemon:
            moment = _kill_at_a_random_moment(daemon, rng, trial, store, before)
        print(f"trial {trial}: killed {moment}; stored {before} -> {stored_count(store)}")
    with DaemonProcess(env, tmp_path / "daemon-final.log") as daemon:
        daemon.wait_for(lambda: stored_count(store) >= FRAMES, 180, "every frame stored")
        in_database = _capture_ms_by_instrument(messages)
        daemon.wait_for(
            lambda: _vm_frame_times(victoria) == in_database, 60, "every frame in the database"
        )
        code, seconds = daemon.terminate()
        print(f"final run: SIGTERM exit {code} after {seconds:.1f} s")
        assert code == 0 and seconds < 10, daemon.log()[-3000:]
        assert "Traceback" not in daemon.log()
    _check_store(store, {m.meta.uid for m in messages})
    assert read_topic(broker.bootstrap_servers, settings.kafka.dlq_topic, 1, timeout_s=3) == []


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


def _capture_ms_by_instrument(messages) -> dict[str, set[int]]:
    times: dict[str, set[int]] = {}
    for m in messages:
        times.setdefault(m.meta.instrument, set()).add(m.meta.captured_at_ns // 10**6)
    return times


def test_sigterm_mid_stream_drains_commits_and_exits_within_10_s(
    tmp_path, broker, unique, model_dir
):
    total = 1500
    settings = settings_for(tmp_path, broker, unique, model_dir)
    publish_synthetic(settings, total, seed=8)
    env = daemon_env(settings)
    store = settings.storage.local.path
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
