"""Lanes on the real broker: ``seawatch run`` with a slow task (the toy plug-in, a model that
takes a second a call) in a lane of its own holds no plankton frame up; each lane stores
every frame once across a killed worker and a restart; a lane's new consumer group starts
where the base group stopped."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sqlite3
import threading
import time

import cv2
import numpy as np
import pytest

from seawatch.contracts.frames import FrameKind, FrameMeta, encode_headers
from seawatch.ingest.group_offsets import seed_offsets
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.lanes import plan_lanes
from seawatch.models.synthetic_stream import synthetic_stream
from tests.daemon_process import DaemonProcess, daemon_env
from tests.integration.helpers import publish_synthetic, run_until, settings_for
from tests.integration.test_offset_commits import _committed
from tests.toy_task import make_toy_model

pytestmark = pytest.mark.integration

SLOW_S = 1.0  # each call of the toy model


def _tasks(tmp_path, unique, model_dir, *, toy_lane: str, infer_s: float) -> dict:
    toy_dir = tmp_path / "toy-model"
    make_toy_model(toy_dir)
    return {
        "plankton": {"topic": f"t{unique}.frames.plankton", "model_dir": str(model_dir)},
        "otolith": {"enabled": False},
        "fish": {"enabled": False},
        "toy": {
            "plugin": "tests.toy_task:PLUGIN",
            "model_dir": str(toy_dir),
            "topic": f"t{unique}.frames.toy",
            "lane": toy_lane,
            "max_batch": 4,
            "options": {"infer_s": infer_s},
        },
    }


def _start(tmp_path, broker, unique, model_dir, name: str, **task_args):
    tasks = _tasks(tmp_path, unique, model_dir, **task_args)
    settings = settings_for(
        tmp_path, broker, unique, model_dir, kafka__topics=None, kafka__partitions=2, tasks=tasks
    )
    env = daemon_env(settings, SEAWATCH_TASKS=json.dumps(tasks))
    del env["SEAWATCH_TASKS__PLANKTON__MODEL_DIR"]  # in the JSON above
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    daemon = DaemonProcess(env, tmp_path / f"{name}.log", cwd=os.getcwd())
    return settings, daemon


def _toy_message(i: int) -> tuple[bytes, list]:
    meta = FrameMeta(
        instrument=f"toy-cam-{i % 2}",
        task="toy",
        captured_at_ns=time.time_ns(),
        frame_kind=FrameKind.ROI,
        content_type="image/png",
    )
    ok, data = cv2.imencode(".png", np.full((24, 32), 40 + i % 200, np.uint8))
    assert ok
    return data.tobytes(), encode_headers(meta)


def _feed(settings, seconds: float, plankton_per_s: float, toy_per_s: float) -> dict[str, int]:
    """Publish plankton and toy frames at these rates, each stamped with its send time."""
    tasks = settings.tasks
    pool = [m for m in synthetic_stream(200, seed=3, start_ns=0) if m.meta.task == "plankton"]
    publisher = Publisher(settings.kafka.bootstrap_servers)
    sent = {"plankton": 0, "toy": 0}
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            while sent["plankton"] < elapsed * plankton_per_s:
                m = pool[sent["plankton"] % len(pool)]
                meta = dataclasses.replace(m.meta, captured_at_ns=time.time_ns())
                topic = tasks["plankton"].topic
                publisher.send(topic, m.value, m.key, encode_headers(meta))
                sent["plankton"] += 1
            while sent["toy"] < elapsed * toy_per_s:
                value, headers = _toy_message(sent["toy"])
                key = f"toy-cam-{sent['toy'] % 2}".encode()
                publisher.send(tasks["toy"].topic, value, key, headers)
                sent["toy"] += 1
            publisher.flush()
            time.sleep(0.05)
    finally:
        publisher.close()
    return sent


def daemon_port(daemon: DaemonProcess) -> int:
    """The first worker's HTTP port (worker i serves on it + i), from the log."""
    return min(map(int, re.findall(r"http_serving address=127\.0\.0\.1:(\d+)", daemon.log())))


def _get(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.status


def _latencies_ms(store, task: str) -> np.ndarray:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT stored_at_ns - captured_at_ns FROM frames WHERE task = ?", (task,)
        ).fetchall()
    return np.array([r[0] / 1e6 for r in rows])


def _counts(store) -> dict[str, tuple[int, int]]:
    """Per task: (rows, distinct uids)."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT task, COUNT(*), COUNT(DISTINCT uid) FROM frames GROUP BY task")
        return {task: (n, distinct) for task, n, distinct in rows}


def _stored(store, task: str) -> int:
    try:
        return _counts(store).get(task, (0, 0))[0]
    except sqlite3.OperationalError:  # not made yet
        return 0


def test_a_slow_lane_holds_no_frame_of_another_lane_up(tmp_path, broker, unique, model_dir):
    settings, daemon = _start(
        tmp_path, broker, unique, model_dir, "lanes", toy_lane="slow", infer_s=SLOW_S
    )
    lanes = [lane.name for lane in plan_lanes(settings)]
    store = settings.storage.local.path
    with daemon:
        ready = lambda: daemon.log().count("partitions_assigned") >= len(lanes)  # noqa: E731
        daemon.wait_for(ready, 90, "every lane's partitions")
        sent = _feed(settings, seconds=12, plankton_per_s=10, toy_per_s=4)
        daemon.wait_for(lambda: _stored(store, "plankton") >= sent["plankton"], 60, "plankton")
        daemon.wait_for(lambda: _stored(store, "toy") >= sent["toy"], 90, "toy")
        port = daemon_port(daemon)
        live = [_get(f"http://127.0.0.1:{port + i}/livez") for i in range(len(lanes))]
        code, _ = daemon.terminate(timeout_s=20)
        log = daemon.log()
    assert code == 0, log[-3000:]
    plankton, toy = _latencies_ms(store, "plankton"), _latencies_ms(store, "toy")
    # the slow lane was busy the whole time: its frames waited for the model
    assert np.percentile(toy, 50) > SLOW_S * 1000, np.percentile(toy, 50)
    # and plankton, in its own lane, waited for none of it
    assert np.percentile(plankton, 99) < 0.8 * SLOW_S * 1000, np.percentile(plankton, [50, 99])
    assert lanes == ["main", "slow"]
    assert live == [200, 200]  # each lane's worker serves its own endpoints, alive
    assert re.search(r"lanes main=plankton@g\S+\.main slow=toy@g\S+\.slow", log)
    assert "Traceback" not in log


def test_each_lane_stores_every_frame_once_across_a_killed_worker_and_a_restart(
    tmp_path, broker, unique, model_dir
):
    settings, daemon = _start(
        tmp_path, broker, unique, model_dir, "first", toy_lane="slow", infer_s=0.2
    )
    store = settings.storage.local.path
    sent = {"plankton": 0, "toy": 0}

    def feed(seconds: float) -> None:
        for task, n in _feed(settings, seconds, plankton_per_s=15, toy_per_s=6).items():
            sent[task] += n

    with daemon:
        daemon.wait_for(lambda: daemon.log().count("partitions_assigned") >= 2, 90, "lanes")
        feeder = threading.Thread(target=feed, args=(10,))
        feeder.start()
        daemon.wait_for(lambda: _stored(store, "toy") >= 10, 60, "toy frames")
        pids = dict(re.findall(r"worker_started index=\d pid=(\d+) lane=(\w+)", daemon.log()))
        os.kill(next(int(p) for p, lane in pids.items() if lane == "slow"), signal.SIGKILL)
        killed_at = _stored(store, "plankton")
        daemon.wait_for(lambda: "worker_exited index=1 code=-9" in daemon.log(), 30, "exit")
        # the slow lane's new worker takes its partitions over; plankton went on meanwhile
        daemon.wait_for(lambda: daemon.log().count("partitions_assigned") >= 3, 60, "rejoin")
        assert _stored(store, "plankton") > killed_at
        feeder.join()
        code, _ = daemon.terminate(timeout_s=20)  # mid-stream: some left for the restart
    assert code == 0
    settings, daemon = _start(
        tmp_path, broker, unique, model_dir, "second", toy_lane="slow", infer_s=0.2
    )
    with daemon:
        daemon.wait_for(lambda: daemon.log().count("partitions_assigned") >= 2, 90, "lanes")
        feed(3)
        daemon.wait_for(
            lambda: all(_stored(store, t) >= n for t, n in sent.items()), 90, "every frame"
        )
        time.sleep(2)  # a duplicate would show now
        code, _ = daemon.terminate(timeout_s=20)
    assert code == 0
    counts = _counts(store)
    assert counts == {task: (n, n) for task, n in sent.items()}, (counts, sent)


def test_a_lane_group_starts_where_the_base_group_stopped(tmp_path, broker, unique, model_dir):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=2)
    kafka, topic = settings.kafka, settings.kafka.topics[0]
    publish_synthetic(settings, 40, seed=1)
    run_until(settings, 40)  # the base group commits its offsets
    base = _committed(kafka.bootstrap_servers, kafka.group_id, topic, 2)
    assert sum(base.values()) == 40
    lane_group = f"{kafka.group_id}.main"
    copied = seed_offsets(kafka, kafka.group_id, lane_group, [topic])
    assert copied == base
    assert _committed(kafka.bootstrap_servers, lane_group, topic, 2) == base
    # a second start copies nothing: the lane's own commits are never moved back
    assert seed_offsets(kafka, kafka.group_id, lane_group, [topic]) == {}
