"""Three ``seawatch run`` daemons on one fish stream, as the scale-out fish tests run them.

Two workers in one consumer group take the first ``FIRST`` sightings, a third joins
mid-stream (the group rebalances onto three members), the rest come as a steady stream, and
worker 0 is SIGKILLed at ``KILL_AT`` and restarted as the supervisor would; each worker has its
own store and gallery file (three hosts, as far as files go).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import FrameMessage, publish_messages
from seawatch.storage.local_store import stored_frame_count
from tests.daemon_process import DaemonProcess, daemon_env
from tests.scaleout.fish_stream import BATCH, distinct_frames

N, FIRST = 3000, 900  # sightings in all; published before the third worker starts
KILL_AT = 1800  # worker 0 is killed (SIGKILL) once the stream is this far, and restarted


@dataclass(frozen=True)
class WorkerRun:
    """What the three workers left: their stores, logs (the killed one's apart), exit codes."""

    stores: list[Path]
    logs: list[str]
    killed_log: str
    codes: list[int]


def run_three_workers(
    settings, tmp_path: Path, fish_model_dir: Path, messages: list[FrameMessage], *, tracklets: bool
) -> WorkerRun:
    """Publish ``messages`` to ``settings.kafka.topics[0]`` while the workers decide them."""
    topic = settings.kafka.topics[0]
    ensure_topics(settings.kafka.bootstrap_servers, [topic, settings.kafka.dlq_topic], 3)
    stores = [tmp_path / f"w{i}" / "store.db" for i in range(3)]
    env = daemon_env(
        settings,
        SEAWATCH_TASKS__PLANKTON__ENABLED="false",
        SEAWATCH_TASKS__OTOLITH__ENABLED="false",
        SEAWATCH_TASKS__FISH__MODEL_DIR=str(fish_model_dir),
        SEAWATCH_TASKS__FISH__OPTIONS__TRACKLETS=str(tracklets).lower(),
        SEAWATCH_INFERENCE__THREADS="1",
        SEAWATCH_KAFKA__MAX_POLL_RECORDS=str(BATCH),
        SEAWATCH_STORAGE__LOCAL__CROPS__ENABLED="false",
        SEAWATCH_ALERTS__ENABLED="false",
    )

    def worker(i: int, name: str = "") -> DaemonProcess:
        own = {**env, "SEAWATCH_STORAGE__LOCAL__PATH": str(stores[i])}
        own["SEAWATCH_HTTP__PORT"] = str(int(env["SEAWATCH_HTTP__PORT"]) + i)
        return DaemonProcess(own, tmp_path / f"{name or f'w{i}'}.log")

    def stored() -> int:
        return sum(stored_frame_count(store) for store in stores)

    publisher = Publisher(settings.kafka.bootstrap_servers)
    workers = []
    try:
        workers.append(worker(0))
        time.sleep(2)  # members join one after another (as `run --workers` staggers them)
        workers.append(worker(1))
        for w in workers:
            w.wait_for(lambda w=w: "daemon_ready" in w.log(), 60, "a worker to start")
        publish_messages(publisher, topic, messages[:FIRST])
        workers[0].wait_for(lambda: stored() >= FIRST * 2 // 3, 90, "the first frames")
        workers.append(worker(2))  # mid-stream: the group rebalances onto three members
        workers[2].wait_for(lambda: "daemon_ready" in workers[2].log(), 60, "the third worker")
        for start in range(FIRST, N, 100):  # the rest as a steady stream
            publish_messages(publisher, topic, messages[start : start + 100])
            time.sleep(0.2)
            if start == KILL_AT:  # SIGKILL mid-stream, restarted as the supervisor would
                assert workers[0].kill() == -9
                killed = workers[0]
                workers[0] = worker(0, "w0-restarted")
        workers[2].wait_for(lambda: distinct_frames(stores) >= N, 150, "every frame stored")
        codes = [w.terminate(timeout_s=20)[0] for w in workers]
    finally:
        publisher.close()
        for w in workers:
            w.__exit__()
    return WorkerRun(stores, [w.log() for w in workers], killed.log(), codes)
