"""Lanes on and off: per-task latency of plankton and fish while otolith specimens arrive.

``seawatch run`` as a child process on the real Tansu broker, twice in one run: with the
default lanes (otolith in a lane of its own: its own consumer group and worker process) and
with every task in one lane (``tasks.otolith.lane: main``, one consumer as before). Each time
a paced producer offers plankton and fish frames at ``--rate`` frames/s (fish ``--fish-share``
of them, the demo's mix) and otolith specimens from ``--scanners`` scanners at one every
``--every-s`` seconds each, for ``--seconds``; the latency (send -> durable in the store) of
the frames sent after the first ``--warmup-s`` is taken per task, p50 and p99. Writes
``benchmarks/results/lanes.json`` and ``lanes.png``.

    python benchmarks/lanes.py [--rate 30] [--seconds 60] [--scanners 2] [--every-s 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from seawatch.contracts.frames import encode_headers
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.models.synthetic_stream import cruise_stream

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
TASKS = ("plankton", "fish", "otolith")


def pools(seed: int = 0) -> dict[str, list]:
    """Frames of the demo's cruise by task (plankton ROI and full frames, fish, otoliths)."""
    stream = cruise_stream(900, seed=seed, start_ns=0, otolith_share=0.06, fish_share=0.08)
    by_task: dict[str, list] = {task: [] for task in TASKS}
    for message in stream:
        if message.meta is not None and message.broken is None:
            by_task[message.meta.task].append(message)
    return by_task


class Offer(threading.Thread):
    """Plankton and fish at ``rate`` frames/s, otolith specimens from each scanner every
    ``every_s``; every message stamped with its send time."""

    def __init__(self, bootstrap: str, topics: dict[str, str], pool: dict, args) -> None:
        super().__init__(name="offer", daemon=True)
        self.publisher = Publisher(bootstrap)
        self.topics, self.pool, self.args = topics, pool, args
        self.sent = dict.fromkeys(TASKS, 0)
        self.stop_event = threading.Event()

    def _send(self, task: str, instrument: str | None = None) -> None:
        m = self.pool[task][self.sent[task] % len(self.pool[task])]
        meta = dataclasses.replace(m.meta, captured_at_ns=time.time_ns())
        key = m.key
        if instrument is not None:
            meta, key = dataclasses.replace(meta, instrument=instrument), instrument.encode()
        self.publisher.send(self.topics[task], m.value, key, encode_headers(meta))
        self.sent[task] += 1

    def run(self) -> None:
        a = self.args
        started = time.monotonic()
        fish_rate, plankton_rate = a.rate * a.fish_share, a.rate * (1 - a.fish_share)
        while not self.stop_event.is_set():
            t = time.monotonic() - started
            while self.sent["plankton"] < t * plankton_rate:
                self._send("plankton")
            while self.sent["fish"] < t * fish_rate:
                self._send("fish")
            # scanner s sends at s * every_s / scanners + k * every_s (staggered)
            due = sum(
                int((t - s * a.every_s / a.scanners) // a.every_s) + 1
                for s in range(a.scanners)
                if t >= s * a.every_s / a.scanners
            )
            while self.sent["otolith"] < due:
                scanner = self.sent["otolith"] % a.scanners + 1
                self._send("otolith", f"otolith-scanner-{scanner:02d}")
            self.publisher.flush()
            self.stop_event.wait(0.05)
        self.publisher.close()


def per_task(store: Path, since_ns: int) -> dict[str, dict]:
    """Per task: frames and latency (send -> stored) p50 / p99 / max in ms."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT task, (stored_at_ns - captured_at_ns) / 1e6 FROM frames "
            "WHERE captured_at_ns >= ?",
            (since_ns,),
        ).fetchall()
    out = {}
    for task in TASKS:
        ms = np.array([v for t, v in rows if t == task])
        if len(ms):
            p50, p99 = np.percentile(ms, [50, 99])
            out[task] = {
                "frames": len(ms),
                "p50_ms": round(float(p50), 1),
                "p99_ms": round(float(p99), 1),
                "max_ms": round(float(ms.max()), 1),
            }
    return out


def stored(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def arm(broker: EmbeddedBroker, tmp: Path, name: str, otolith_lane: str, args, pool) -> dict:
    """One daemon (lanes as configured), offered the mix; per-task latency."""
    topics = {task: f"lanes.{name}.{task}" for task in TASKS}
    ensure_topics(broker.bootstrap_servers, [*topics.values(), "lanes.dlq", "lanes.alerts"], 4)
    tasks = {task: {"topic": topic} for task, topic in topics.items()}
    tasks["otolith"]["lane"] = otolith_lane
    store, log_path = tmp / f"{name}.db", tmp / f"{name}.log"
    env = {
        **os.environ,
        "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SEAWATCH_KAFKA__GROUP_ID": f"bench-{name}",
        "SEAWATCH_KAFKA__DLQ_TOPIC": "lanes.dlq",
        "SEAWATCH_ALERTS__TOPIC": "lanes.alerts",
        "SEAWATCH_TASKS": json.dumps(tasks),
        "SEAWATCH_STORAGE__LOCAL__PATH": str(store),
        "SEAWATCH_HTTP__ENABLED": "false",
    }
    lanes = 2 if otolith_lane != "main" else 1
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "seawatch", "run"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
        try:
            while log_path.read_text(errors="replace").count("partitions_assigned") < lanes:
                if process.poll() is not None:
                    raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.2)
            time.sleep(2)
            offer = Offer(broker.bootstrap_servers, topics, pool, args)
            since_ns = time.time_ns() + int(args.warmup_s * 1e9)
            offer.start()
            time.sleep(args.seconds)
            offer.stop_event.set()
            offer.join()
            deadline = time.monotonic() + 120
            while stored(store) < sum(offer.sent.values()) and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            process.terminate()
            code = process.wait(30)
    text = log_path.read_text(errors="replace")
    return {
        "lanes": "otolith alone, plankton+fish together" if lanes == 2 else "off (one consumer)",
        "sent": offer.sent,
        "stored": stored(store),
        "tasks": per_task(store, since_ns),
        "exit_code": code,
        "tracebacks": text.count("Traceback"),
    }


def plot(arms: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.2
    for i, (name, result) in enumerate(arms.items()):
        for j, q in enumerate(("p50_ms", "p99_ms")):
            x = np.arange(len(TASKS)) + (2 * i + j - 1.5) * width
            values = [result["tasks"].get(t, {}).get(q, np.nan) for t in TASKS]
            ax.bar(x, values, width, label=f"lanes {name} {q[:3]}")
    ax.axhline(1000, color="grey", linestyle=":", label="1 s")
    ax.set_xticks(np.arange(len(TASKS)), TASKS)
    ax.set(ylabel="send -> stored (ms)", title="Per-task latency, lanes on and off")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0, help="plankton + fish frames/s")
    parser.add_argument("--fish-share", type=float, default=0.08)
    parser.add_argument("--scanners", type=int, default=2)
    parser.add_argument("--every-s", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    pool = pools()
    arms = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        for name, lane in (("on", "otolith"), ("off", "main")):
            arms[name] = arm(broker, Path(tmp), name, lane, args, pool)
            console.print(name, arms[name])
    table = Table("lanes", "task", "frames", "p50 ms", "p99 ms", "max ms", title="lanes")
    for name, result in arms.items():
        for task, row in result["tasks"].items():
            table.add_row(
                name, task, str(row["frames"]), str(row["p50_ms"]), str(row["p99_ms"]),
                str(row["max_ms"]),
            )  # fmt: skip
    console.print(table)
    result = {
        "offered": {
            "plankton_fish_frames_per_s": args.rate,
            "fish_share": args.fish_share,
            "otolith": f"{args.scanners} scanners, one specimen every {args.every_s:g} s each",
        },
        "seconds": args.seconds,
        "warmup_s": args.warmup_s,
        "arms": arms,
        "machine": f"{platform.machine()} cpus={len(os.sched_getaffinity(0))}",
        "load_average_at_end": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lanes.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(arms, args.out / "lanes.png")


if __name__ == "__main__":
    main()
