"""Scale-out: ``seawatch run --workers N`` against one worker, on the same backlog.

A backlog of ``--frames`` synthetic frames in a topic of 4 partitions on the real Tansu
broker; each run is ``seawatch run --workers N`` as a process in a fresh consumer group, so
it consumes the whole backlog. The workers run with one thread each (one ONNX Runtime
thread, ``inference.max_batches_in_flight`` 0: the loop infers each batch itself), which is
what the target compares; one worker with its inference thread overlapping the loop (the
default, two busy threads) is measured beside them for reference. Throughput is taken
between 20 % and 90 % of the backlog stored (after start-up and the group's rebalance, before
the tail where partitions run dry one by one). Message keys spread each instrument over the
partitions, as a ship with many instruments would. Runs alternate 1, 2, 1, 2, ... and the ratio
is the median's. Writes ``benchmarks/results/workers.json``.

    python benchmarks/workers.py [--frames 8000] [--repeats 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from offered_load import stored_frames
from seawatch.config import resolve_model_dir
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream

RESULTS = Path(__file__).parent / "results"
TOPIC = "workers.frames.plankton"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor's workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*"):
            children = (task / "children").read_text().split() if task.exists() else []
            pids.extend(int(c) for c in children)
        i += 1
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (gone processes count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def one_run(
    broker: EmbeddedBroker, workers: int, frames: int, tmp: Path, run: int, *, inline: bool
) -> tuple[float, float, float]:
    """Frames/s of ``seawatch run --workers N`` between 20 % and 90 % of the backlog, and the
    cores the daemon's processes and the broker used meanwhile (CPU seconds / wall seconds)."""
    store = tmp / f"run{run}.db"
    env = {
        **os.environ,
        "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SEAWATCH_KAFKA__TOPICS": json.dumps([TOPIC]),
        "SEAWATCH_KAFKA__DLQ_TOPIC": "workers.dlq",
        "SEAWATCH_KAFKA__GROUP_ID": f"workers-run{run}",
        "SEAWATCH_KAFKA__PARTITIONS": "4",
        "SEAWATCH_INFERENCE__THREADS": "1",
        "SEAWATCH_INFERENCE__MAX_BATCHES_IN_FLIGHT": "0" if inline else "8",
        "SEAWATCH_TASKS__PLANKTON__MODEL_DIR": str(resolve_model_dir(Path("models/plankton"))),
        "SEAWATCH_STORAGE__LOCAL__PATH": str(store),
        "SEAWATCH_ALERTS__TOPIC": "workers.alerts",
    }
    log = open(tmp / f"run{run}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "seawatch", "run", "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=log,
    )
    marks: dict[float, tuple[float, float, float]] = {}  # share: (time, daemon cpu, broker)
    deadline = time.monotonic() + 600
    try:
        while len(marks) < 2 and time.monotonic() < deadline:
            stored = stored_frames(store)
            for share in (0.2, 0.9):
                if share not in marks and stored >= share * frames:
                    marks[share] = (
                        time.monotonic(),
                        cpu_seconds(_tree(process.pid)),
                        cpu_seconds([broker.pid] if broker.pid else []),
                    )
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    (t0, daemon0, broker0), (t1, daemon1, broker1) = marks[0.2], marks[0.9]
    return (
        0.7 * frames / (t1 - t0),
        (daemon1 - daemon0) / (t1 - t0),
        (broker1 - broker0) / (t1 - t0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    messages = [
        # the key spreads an instrument's frames over the partitions (as many instruments
        # would): keyed by instrument alone, the one full-frame camera's partition is the tail
        dataclasses.replace(m, key=m.key + b"#%d" % (i % 4))
        for i, m in enumerate(
            synthetic_stream(args.frames, seed=0, start_ns=time.time_ns() - 10**12)
        )
    ]
    # (label, workers, one thread each)
    setups = [("1", 1, True), (str(args.workers), args.workers, True), ("1-overlapped", 1, False)]
    runs: dict[str, list[float]] = {label: [] for label, _, _ in setups}
    cores: dict[str, list[float]] = {label: [] for label, _, _ in setups}
    broker_cores: dict[str, list[float]] = {label: [] for label, _, _ in setups}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap_servers, [TOPIC, "workers.dlq", "workers.alerts"], 4)
        publisher = Publisher(broker.bootstrap_servers)
        try:
            publish_messages(publisher, TOPIC, messages)
        finally:
            publisher.close()
        run = 0
        for _ in range(args.repeats):
            for label, workers, inline in setups:
                rate, used, used_broker = one_run(
                    broker, workers, args.frames, Path(tmp), run, inline=inline
                )
                run += 1
                runs[label].append(round(rate, 1))
                cores[label].append(round(used, 2))
                broker_cores[label].append(round(used_broker, 2))
                console.print(
                    f"--workers {label}: {rate:.1f} frames/s; cores used: daemon {used:.2f}, "
                    f"broker {used_broker:.2f}"
                )
    median = {label: statistics.median(values) for label, values in runs.items()}
    many = median[str(args.workers)]
    result = {
        "frames": args.frames,
        "partitions": 4,
        "threads_per_worker": 1,
        "frames_per_s": runs,
        # CPU seconds per wall second over the measured window: how much of the machine
        # the workers take, and the broker beside them
        "daemon_cores_used": cores,
        "broker_cores_used": broker_cores,
        "ratio": round(many / median["1"], 3),
        "ratio_over_overlapped_worker": round(many / median["1-overlapped"], 3),
        "machine": f"{platform.machine()} cpus={len(os.sched_getaffinity(0))}",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workers.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(
        f"{args.workers} workers / 1 worker, 1 thread each = {result['ratio']:.2f} (target 1.7); "
        f"/ 1 overlapped worker = {result['ratio_over_overlapped_worker']:.2f}"
    )


if __name__ == "__main__":
    main()
