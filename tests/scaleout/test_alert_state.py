"""Alert state across rebalances and crashes, on the real broker with real daemon processes.

(a) Four instruments keep sending while workers join and leave the group five times: no
``instrument_silent`` alert for them, and the one instrument that really falls silent is
reported once (its state moved between workers with its partition).
(b) Workers SIGKILLed on the commit path after they sent alerts, then restarted: every alert
id is on the alerts topic exactly once, and the alerts are those of a clean run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from seawatch.ingest.kafka_io import ensure_topics
from tests.daemon_process import DaemonProcess, daemon_env, stored_count
from tests.integration.helpers import run_until, settings_for
from tests.scaleout.streams import SteadyInstruments, publish, quality_stream, raw_messages

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

# Keyed by these names, the four sending instruments land on four different partitions of 4
# (Kafka's murmur2 partitioner); the silent one shares flowcam-01's partition.
SENDING = ("uvp6-04", "ifcb-007", "zooscan-02", "flowcam-01")
SILENT = "cpics-01"
SILENT_RULE = {
    "name": "silent",
    "kind": "instrument_silent",
    "severity": "critical",
    "silent_s": 10,
    "grace_s": 10,
    "cooldown_s": 0,
}


def _assignments(worker: DaemonProcess) -> int:
    return worker.log().count("partitions_assigned partitions=")


def _rebalanced(workers: list[DaemonProcess], before: dict[int, int], timeout_s: float = 60):
    """Wait until each of ``workers`` has been assigned again since ``before`` (pid -> count)."""
    for worker in workers:
        worker.wait_for(
            lambda w=worker: _assignments(w) > before.get(w.pid, 0), timeout_s, "a rebalance"
        )


def _silent_alerts(bootstrap: str, topic: str) -> Counter:
    alerts = [json.loads(r.value) for r in raw_messages(bootstrap, topic)]
    return Counter(a["instrument"] for a in alerts if a["kind"] == "instrument_silent")


def test_rebalances_raise_no_silent_alert_while_instruments_send_and_a_silent_one_is_reported(
    tmp_path, broker, unique, model_dir
):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=4)
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], 4)
    rules = json.dumps([SILENT_RULE])
    alerts_topic = f"{kafka.dlq_topic}.alerts"

    def worker(name: str) -> DaemonProcess:
        env = daemon_env(
            settings,
            SEAWATCH_ALERTS__RULES=rules,
            SEAWATCH_ALERTS__STATE_TOPIC=f"t{unique}.alerts.state",
            SEAWATCH_KAFKA__CLIENT_ID=name,
        )
        return DaemonProcess(env, tmp_path / f"{name}.log")

    stream = SteadyInstruments(broker.bootstrap_servers, kafka.topics[0], SENDING, [SILENT])
    stream.start()
    live: list[DaemonProcess] = []
    try:
        live.append(worker("a"))
        _rebalanced(live, {})
        live[0].wait_for(lambda: stored_count(settings.storage.local.path) > 20, 60, "frames")
        # five rebalances: b joins, c joins, b leaves (SIGTERM), d joins, c dies (SIGKILL)
        for step in ("join b", "join c", "stop b", "join d", "kill c"):
            before = {w.pid: _assignments(w) for w in live}
            verb, name = step.split()
            if verb == "join":
                live.append(worker(name))
            else:
                gone = next(w for w in live if w.log_path.stem == name)
                live.remove(gone)
                if verb == "stop":
                    assert gone.terminate()[0] == 0
                else:
                    gone.kill()
            _rebalanced(live, before)
            time.sleep(3)  # work goes on between rebalances
        assert _assignments(live[0]) >= 6  # a: its first assignment and five more
        # the silent instrument is reported once the grace after the last rebalance is over
        deadline = time.monotonic() + 45
        while not _silent_alerts(broker.bootstrap_servers, alerts_topic)[SILENT]:
            assert time.monotonic() < deadline, "the silent instrument was never reported"
            time.sleep(1)
        time.sleep(SILENT_RULE["silent_s"])  # and still nothing about the sending ones
        sending_until = time.monotonic()
        assert all(sending_until - stream.last_sent[name] < 1 for name in SENDING)
        for w in live:
            assert w.terminate()[0] == 0
    finally:
        stream.stop()
        for w in live:
            if w.alive():
                w.kill()
    silent = _silent_alerts(broker.bootstrap_servers, alerts_topic)
    assert silent == Counter({SILENT: 1}), silent
    logs = "".join(w.log() for w in live)
    assert "alert_state_taken" in logs and "Traceback" not in logs


def _final_states(broker, topic: str) -> dict[int, tuple[int, dict]]:
    """Per frame partition, the newest snapshot's covered offset and instrument states."""
    newest = {r.key: json.loads(r.value) for r in raw_messages(broker.bootstrap_servers, topic)}
    return {s["partition"]: (s["covered"], s["instruments"]) for s in newest.values()}


def _crashing_worker(env: dict[str, str], log_path: Path, point: str, after: int) -> int:
    """Run the crashing worker until it kills itself; its exit code."""
    with open(log_path, "ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "tests.scaleout.crashing_worker", point, "--after", str(after)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=log,
            timeout=120,
        )
    return done.returncode


def test_workers_killed_on_the_commit_path_send_each_alert_once_and_the_alerts_of_a_clean_run(
    tmp_path, broker, unique, model_dir
):
    quality = {
        "name": "quality",
        "kind": "frame_quality",
        "window_frames": 150,  # each instrument's whole stream: a frame judged twice shows
        "min_frames": 5,
        "max_share": 0.2,
        "cooldown_s": 2,
    }
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__partitions=2,
        kafka__max_poll_records=16,
        alerts__rules=[quality],
        alerts__topic=f"t{unique}.clean.alerts",
        alerts__state_topic=f"t{unique}.clean.state",
        kafka__group_id=f"g{unique}-clean",
        storage__local__path=str(tmp_path / "clean.db"),
    )
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], 2)
    messages = quality_stream(("uvp6-04", "ifcb-007"), 150, time.time_ns() - 10**12)
    publish(broker.bootstrap_servers, kafka.topics[0], messages)

    run_until(settings, len(messages))  # the clean run, in this process
    clean = [
        json.loads(r.value) for r in raw_messages(kafka.bootstrap_servers, settings.alerts.topic)
    ]
    assert len(clean) >= 10 and len({a["id"] for a in clean}) == len(clean)

    crash_store = tmp_path / "crash.db"
    crashing = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__partitions=2,
        kafka__group_id=f"g{unique}-crash",
        storage__local__path=str(crash_store),
    )
    env = daemon_env(
        crashing,
        SEAWATCH_ALERTS__RULES=json.dumps([quality]),
        SEAWATCH_ALERTS__STATE_TOPIC=f"t{unique}.crash.state",
        SEAWATCH_KAFKA__MAX_POLL_RECORDS="16",
        SEAWATCH_ALERTS__STATE_INTERVAL_S="0",  # a snapshot and a commit every batch
    )
    alerts_topic = env["SEAWATCH_ALERTS__TOPIC"]
    # killed after its alerts were sent, before the state that covers them was written
    assert _crashing_worker(env, tmp_path / "crash1.log", "checkpoint", 3) == -9
    # killed after the state was written, before the offsets were committed
    assert _crashing_worker(env, tmp_path / "crash2.log", "commit", 3) == -9
    with DaemonProcess(env, tmp_path / "last.log") as daemon:
        daemon.wait_for(lambda: stored_count(crash_store) >= len(messages), 90, "all")
        assert daemon.terminate()[0] == 0
        last = daemon.log()
    on_topic = [json.loads(r.value) for r in raw_messages(broker.bootstrap_servers, alerts_topic)]
    copies = Counter(a["id"] for a in on_topic)
    assert copies and max(copies.values()) == 1, copies.most_common(3)
    assert set(copies) == {a["id"] for a in clean}
    # the state at the end is the clean run's: no frame counted twice, none left out
    assert _final_states(broker, f"t{unique}.crash.state") == _final_states(
        broker, f"t{unique}.clean.state"
    )
    # and the crashes happened where they were meant to: the second worker found alerts of
    # the first one's last batch already sent; the last one skipped the replayed records
    # that the second one's snapshot covered
    second = (tmp_path / "crash2.log").read_text()
    assert "crash_point point=checkpoint" in (tmp_path / "crash1.log").read_text()
    assert "crash_point point=commit" in second and "alert_already_sent" in second
    assert "alert_replay_skipped" in last
