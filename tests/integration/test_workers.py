"""`seawatch run --workers N`: N processes in one consumer group share the partitions."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.daemon_process import DaemonProcess, daemon_env, stored_count
from tests.integration.helpers import publish_synthetic, settings_for

pytestmark = pytest.mark.integration


def test_two_workers_share_the_partitions_survive_a_kill_and_store_every_frame_once(
    tmp_path, broker, unique, model_dir
):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=4)
    store, env = settings.storage.local.path, daemon_env(settings)
    publish_synthetic(settings, 400, seed=4)
    with DaemonProcess(env, tmp_path / "first.log", "--workers", "2") as daemon:
        daemon.wait_for(lambda: stored_count(store) >= 400, 120, "400 frames")
        code, _ = daemon.terminate(timeout_s=20)
        stopped = [int(n) for n in re.findall(r"stopped frames=(\d+)", daemon.log())]
    assert code == 0
    assert len(stopped) == 2 and all(n > 0 for n in stopped) and sum(stopped) == 400
    # A worker killed mid-stream is restarted; its uncommitted batches are replayed. A new
    # group (it reads the topic from the start, and the replays overwrite): on Tansu 0.6 two
    # members joining a group that all members had just left were seen to stall unassigned.
    env["SEAWATCH_KAFKA__GROUP_ID"] += "-b"
    with DaemonProcess(env, tmp_path / "second.log", "--workers", "2") as daemon:
        daemon.wait_for(lambda: "worker_started index=1" in daemon.log(), 30, "workers")
        publish_synthetic(settings, 200, seed=5, start_ns=time.time_ns())
        daemon.wait_for(lambda: stored_count(store) >= 450, 120, "450 frames")
        pids = dict(re.findall(r"worker_started index=(\d) pid=(\d+)", daemon.log()))
        os.kill(int(pids["0"]), signal.SIGKILL)
        daemon.wait_for(lambda: "worker_exited index=0 code=-9" in daemon.log(), 30, "restart")
        daemon.wait_for(lambda: stored_count(store) >= 600, 120, "600 frames")
        code, seconds = daemon.terminate(timeout_s=20)
        log = daemon.log()
    assert code == 0 and seconds < 13, log[-3000:]
    with sqlite3.connect(store) as db:
        uids = [row[0] for row in db.execute("SELECT uid FROM frames")]
        partitions = {row[0] for row in db.execute("SELECT DISTINCT partition FROM frames")}
    assert len(uids) == len(set(uids)) == 600
    assert len(partitions) >= 2  # the instruments' keys spread over several partitions
    assert "Traceback" not in log


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path, broker, unique, model_dir):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=2)
    with DaemonProcess(daemon_env(settings), tmp_path / "run.log", "--workers", "2") as daemon:
        daemon.wait_for(lambda: daemon.log().count("daemon_ready") == 2, 60, "two workers")
        pids = [int(p) for _, p in re.findall(r"worker_started index=(\d) pid=(\d+)", daemon.log())]
        daemon.kill()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        state = stat.read().split(")")[-1].split()[0]
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def test_more_workers_than_partitions_is_refused_at_start(tmp_path):
    env = {
        **os.environ,
        "SEAWATCH_KAFKA__PARTITIONS": "2",
        "SEAWATCH_STORAGE__LOCAL__PATH": str(tmp_path / "store.db"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "seawatch", "run", "--workers", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SEAWATCH_KAFKA__PARTITIONS=3" in done.stderr
