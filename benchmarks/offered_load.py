"""Offering a load to the daemon: a paced producer, ``seawatch run`` as a child process, and
what is measured of it (frames stored, resident memory, end-to-end latency per window).
Shared by ``soak.py`` and ``latency.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from seawatch.config import load_settings, resolve_model_dir
from seawatch.contracts.frames import encode_headers
from seawatch.daemon import build_daemon
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.storage.local_store import stored_frame_count

TOPIC, DLQ, ALERTS = "load.frames.plankton", "load.frames.dlq", "load.alerts"


def _settings(broker: EmbeddedBroker, store: Path, group: str):
    return load_settings(
        kafka__bootstrap_servers=broker.bootstrap_servers,
        kafka__topics=[TOPIC if group == "daemon" else f"{TOPIC}.{group}"],
        kafka__dlq_topic=DLQ,
        kafka__group_id=group,
        kafka__max_poll_interval_ms=10_000,
        tasks__plankton__model_dir=str(resolve_model_dir(Path("models/plankton"))),
        storage__local__path=str(store),
        alerts__topic=ALERTS,
    )


def backlog_maximum(broker: EmbeddedBroker, pool, n: int, tmp: Path) -> float:
    """Frames/s of the daemon (in this process) draining a pre-published backlog."""
    settings = _settings(broker, tmp / "calibrate.db", "calibrate")
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, DLQ], kafka.partitions)
    now = time.time_ns() - n * 10**6
    messages = [_fresh(pool[i % len(pool)], now + i * 1000) for i in range(n)]
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        publish_messages(publisher, kafka.topics[0], messages)
    finally:
        publisher.close()
    daemon = build_daemon(settings)
    try:
        stats = daemon.run(lambda s: s.processed >= n)
    finally:
        daemon.close()
    return stats.frames / stats.busy_seconds()


def _fresh(message, captured_ns: int):
    meta = dataclasses.replace(message.meta, captured_at_ns=captured_ns)
    return dataclasses.replace(message, meta=meta)


class PacedProducer(threading.Thread):
    """Offers ``rate`` frames/s from the pool, in 100 ms ticks, until stopped."""

    def __init__(self, bootstrap: str, pool, rate: float) -> None:
        super().__init__(name="producer", daemon=True)
        self.pool, self.rate = pool, rate
        self.publisher = Publisher(bootstrap)
        self.sent = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop_event.is_set():
            due = int((time.monotonic() - started) * self.rate)
            for _ in range(due - self.sent):
                m = self.pool[self.sent % len(self.pool)]
                meta = dataclasses.replace(m.meta, captured_at_ns=time.time_ns())
                self.publisher.send(TOPIC, m.value, m.key, encode_headers(meta))
                self.sent += 1
            self.publisher.flush()
            self.stop_event.wait(0.1)
        self.publisher.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stored_frames(store: Path) -> int:
    return stored_frame_count(store)


def latency_windows(store: Path, start_ns: int, window_s: float = 60) -> list[dict]:
    """Frames stored and their end-to-end latency (producer send -> durable in the store),
    p50/p99, per ``window_s`` of capture time from ``start_ns``."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT captured_at_ns, stored_at_ns FROM frames WHERE captured_at_ns >= ?",
            (start_ns,),
        ).fetchall()
    minutes: dict[int, list[float]] = {}
    for captured, stored in rows:
        minutes.setdefault(int((captured - start_ns) // (window_s * 10**9)), []).append(
            (stored - captured) / 1e6
        )
    return [
        {
            "window": m,
            "frames": len(lat),
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1),
        }
        for m, lat in sorted(minutes.items())
    ]


class DaemonUnderLoad:
    """``seawatch run`` as a child process, and a producer that can be set to any rate."""

    def __init__(
        self, broker: EmbeddedBroker, pool, tmp: Path, env: dict[str, str] | None = None
    ) -> None:
        self.store = tmp / "daemon.db"
        self.log_path = tmp / "daemon.log"
        settings = _settings(broker, self.store, "daemon")
        ensure_topics(broker.bootstrap_servers, [TOPIC, DLQ, ALERTS], 4)
        base = {
            "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "SEAWATCH_KAFKA__TOPICS": json.dumps([TOPIC]),
            "SEAWATCH_KAFKA__DLQ_TOPIC": DLQ,
            "SEAWATCH_KAFKA__GROUP_ID": "daemon",
            "SEAWATCH_TASKS__PLANKTON__MODEL_DIR": str(settings.tasks["plankton"].model_dir),
            "SEAWATCH_STORAGE__LOCAL__PATH": str(self.store),
            "SEAWATCH_ALERTS__TOPIC": ALERTS,
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "seawatch", "run"],
            env={**os.environ, **base, **(env or {})},
            stdout=self._log,
            stderr=self._log,
        )
        while "daemon_ready" not in self.log_path.read_text(errors="replace"):
            time.sleep(0.2)
        self.pool, self.bootstrap = pool, broker.bootstrap_servers
        self.sent = 0

    def offer(self, rate: float, seconds: float, sample=None) -> list[dict]:
        """Offer ``rate`` frames/s for ``seconds``; every 2 s ``sample`` the daemon."""
        producer = PacedProducer(self.bootstrap, self.pool, rate)
        producer.start()
        samples = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            samples.append(
                {
                    "t_s": round(elapsed, 1),
                    "rss_mib": round(rss_kib(self.process.pid) / 1024, 1),
                    "sent": self.sent + producer.sent,
                    "stored": stored_frames(self.store),
                }
            )
            if sample is not None:
                sample(samples[-1])
            time.sleep(2)
        producer.stop_event.set()
        producer.join()
        self.sent += producer.sent
        return samples

    def drain(self, timeout_s: float) -> int:
        """Wait until every frame sent is stored; the frames stored."""
        deadline = time.monotonic() + timeout_s
        while (stored := stored_frames(self.store)) < self.sent and time.monotonic() < deadline:
            time.sleep(0.5)
        return stored

    def stop(self) -> dict:
        """SIGTERM; the exit code and what the log holds of errors and dead letters."""
        self.process.terminate()
        code = self.process.wait(30)
        self._log.close()
        text = self.log_path.read_text(errors="replace")
        return {
            "exit_code": code,
            "error_lines": sum(" level=ERROR " in line for line in text.splitlines()),
            "tracebacks": text.count("Traceback"),
            "dead_letters": text.count("dead_letter "),
        }


def sustained_maximum(daemon: DaemonUnderLoad, offered: float, seconds: float = 60) -> float:
    """Frames/s the daemon stores while more is offered than it can take (last 40 s)."""
    samples = daemon.offer(offered, seconds)
    late = [s for s in samples if s["t_s"] >= seconds - 40]
    return (late[-1]["stored"] - late[0]["stored"]) / (late[-1]["t_s"] - late[0]["t_s"])
