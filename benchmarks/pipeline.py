"""Pipeline throughput against its limit and against the naive script, per task, in one run.

For each task (plankton, otolith, fish): same model, same inference threads, same frames for
all three runs:

1. raw     ONNX Runtime alone on that task's model inputs, pre-made by the pipeline's own
           prepare stage (decoded, segmented, cropped), in batches of max_batch: the limit
           of this machine for this model.
2. pipeline  the daemon: Kafka (real Tansu broker) in -> decode -> segment/prepare -> infer
           -> SQLite store (durable) -> offsets committed.
3. naive   the script a scientist would write: one message at a time, batch 1, one
           database commit and one offset commit per frame.

Prints pipeline/raw and pipeline/naive and the latency percentiles per task, and writes
``benchmarks/results/pipeline.json`` (``{"tasks": {task: {...}}, ...}``; a run of one task
keeps the other tasks' last blocks).

    python benchmarks/pipeline.py [--task all] [--frames N] [--threads 1]

The otolith block uses the committed ``models/otolith`` (``--otolith-build committed``, the
default), ``--otolith-model DIR``, or an artifact trained for the run (``full-arch``: the
default architecture trained for seconds; ``quick``: the tests' tiny network); the JSON says
which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pipeline_tasks import (
    FISH_DIR,
    PLANKTON_DIR,
    TASKS,
    Models,
    bench_naive,
    model_inputs,
    otolith_model,
    task_messages,
)
from seawatch.config import load_settings, resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.daemon import build_daemon
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages

RESULTS = Path(__file__).parent / "results" / "pipeline.json"
DEFAULT_FRAMES = {"plankton": 6000, "otolith": 1000, "fish": 6000}


def bench_raw(backend: OnnxRuntimeBackend, tensor: np.ndarray, batch: int) -> float:
    """Seconds for ONNX Runtime to run every model input once, in batches of ``batch``."""
    started = time.perf_counter()
    for start in range(0, len(tensor), batch):
        backend.run(tensor[start : start + batch])
    return time.perf_counter() - started


def bench_pipeline(settings, n: int) -> tuple[float, object]:
    """Seconds from the first poll to the last durable, committed batch."""
    daemon = build_daemon(settings)
    try:
        stats = daemon.run(lambda s: s.processed >= n)
    finally:
        daemon.close()
    return stats.busy_seconds(), stats


def _publish(settings, messages) -> None:
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        publish_messages(publisher, kafka.topics[0], messages)
    finally:
        publisher.close()


def _settings(args, broker: EmbeddedBroker, models: Models, tmp: Path, task: str, repeat=""):
    """The daemon's settings for one run: every available head served, one topic."""
    name = f"{task}{repeat}"
    tuning = {}
    if args.decode_threads:
        tuning["ingest__decode_threads"] = args.decode_threads
    if args.poll_records:
        tuning["kafka__max_poll_records"] = args.poll_records
    return load_settings(
        **tuning,
        kafka__bootstrap_servers=broker.bootstrap_servers,
        kafka__topics=[f"bench.{name}.frames.{task}"],
        kafka__group_id=f"bench-{name}",
        kafka__max_poll_interval_ms=6000,
        kafka__session_timeout_ms=6000,
        kafka__heartbeat_interval_ms=500,
        inference__threads=args.threads,
        inference__max_batch=args.max_batch,
        tasks={
            "plankton": {"model_dir": str(models.plankton)},
            "otolith": {"model_dir": str(models.otolith)} if models.otolith else {"enabled": False},
            "fish": {"model_dir": str(models.fish)},
        },
        storage__local__path=str(tmp / f"{name}.db"),
    )


def run_task(args, task: str, models: Models, broker, tmp: Path, console: Console) -> dict:
    """Raw, pipeline (interleaved repeats) and naive for one task; its result block."""
    n = args.frames or DEFAULT_FRAMES[task]
    messages = task_messages(task, n, seed=args.seed, full_share=args.full_share)
    card = load_card(models.of(task))
    base = _settings(args, broker, models, tmp, task)
    tensor = model_inputs(base, messages)
    frames = len(messages)
    console.print(
        f"[bold]{task}[/]: {frames} frames, {len(tensor)} model inputs "
        f"{tuple(tensor.shape[1:])}, model {card.name} {card.version}"
    )
    backend = OnnxRuntimeBackend(models.of(task) / ONNX_FILE, threads=args.threads)
    # raw runs the batches the daemon runs
    batch = base.tasks[task].batch(args.max_batch)
    backend.run(tensor[:batch])  # warm-up
    raw_runs: list[float] = []
    pipe_runs: list[tuple[float, object]] = []
    for repeat in range(args.repeats):
        # Interleaved: this machine is shared and noisy, so each ratio pairs runs taken
        # side by side, and the median of the ratios is reported.
        raw_runs.append(bench_raw(backend, tensor, batch))
        settings = _settings(args, broker, models, tmp, task, repeat)
        _publish(settings, messages)
        pipe_runs.append(bench_pipeline(settings, frames))
        console.print(
            f"  repeat {repeat + 1}/{args.repeats}: raw {frames / raw_runs[-1]:.0f} "
            f"frames/s, pipeline {frames / pipe_runs[-1][0]:.0f} frames/s"
        )
    backend.close()
    naive_n = min(args.naive_frames or frames, frames)
    naive_s = bench_naive(settings, task, naive_n, models, args.threads)
    ratios = [raw / pipe for raw, (pipe, _) in zip(raw_runs, pipe_runs, strict=True)]
    middle = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
    raw_s, (pipe_s, stats) = raw_runs[middle], pipe_runs[middle]
    raw_fps, pipe_fps, naive_fps = frames / raw_s, frames / pipe_s, naive_n / naive_s
    inputs = stats.objects if task == "plankton" else stats.processed  # one input per frame
    s50, s99 = stats.service_percentiles(50, 99)
    block = {
        "frames": frames,
        "objects": len(tensor),  # model inputs: plankton objects, one per otolith/fish frame
        "input_shape": list(tensor.shape[1:]),
        "threads": args.threads,
        "decode_threads": settings.ingest.decode_threads,
        "max_poll_records": settings.kafka.max_poll_records,
        "max_batches_in_flight": settings.inference.max_batches_in_flight,
        "max_batch": batch,
        "model": f"{card.name} {card.version}",
        "raw_frames_per_s": round(raw_fps, 1),
        "raw_objects_per_s": round(len(tensor) / raw_s, 1),
        "pipeline_frames_per_s": round(pipe_fps, 1),
        "pipeline_objects_per_s": round(inputs / pipe_s, 1),
        "naive_frames_per_s": round(naive_fps, 1),
        "naive_frames": naive_n,
        "pipeline_over_raw": round(pipe_fps / raw_fps, 3),
        "pipeline_over_raw_all_repeats": [round(r, 3) for r in ratios],
        "pipeline_over_naive": round(pipe_fps / naive_fps, 2),
        "pipeline_stage_seconds": {k: round(v, 2) for k, v in stats.stage_seconds.items()},
        "pipeline_model_seconds": round(stats.infer_ms_total / 1000, 2),
        "pipeline_seconds": round(pipe_s, 2),
        "raw_seconds": round(raw_s, 2),
        "batch_latency_p50_ms": round(s50, 1),
        "batch_latency_p99_ms": round(s99, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    if task == "otolith":
        block["model_source"] = models.otolith_source
    if task != "plankton":
        block["naive_note"] = "naive stores the first output only (no heat map, no gallery)"
    return block


def _table(results: dict) -> Table:
    table = Table(title="pipeline benchmark (per task: same model, threads and frames)")
    columns = ("task", "raw f/s", "pipe f/s", "pipe/raw", "all repeats")
    for column in (*columns, "naive f/s", "pipe/naive", "p50/p99 ms"):
        table.add_column(column, justify="right")
    for task, r in results.items():
        table.add_row(
            task,
            f"{r['raw_frames_per_s']:.0f}",
            f"{r['pipeline_frames_per_s']:.0f}",
            f"{r['pipeline_over_raw']:.2f}",
            " ".join(f"{x:.2f}" for x in r["pipeline_over_raw_all_repeats"]),
            f"{r['naive_frames_per_s']:.0f}",
            f"{r['pipeline_over_naive']:.1f}x",
            f"{r['batch_latency_p50_ms']:.0f}/{r['batch_latency_p99_ms']:.0f}",
        )
    return table


def _write(results: dict, note: str | None, load_before: tuple, steal_s: float) -> None:
    """Write this run's task blocks, keeping the blocks of tasks not run this time."""
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    tasks = {**previous.get("tasks", {}), **results}
    data = {
        "tasks": {t: tasks[t] for t in TASKS if t in tasks},
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={_cpus()}".strip(),
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_steal_s_during_run": round(steal_s, 2),  # taken by the host's other guests
        "note": note,
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per task (default: plankton and fish 6000, otolith 1000: long enough that "
        "filling and draining the pipeline weigh about 1 %%)",
    )
    parser.add_argument(
        "--naive-frames", type=int, default=1000, help="frames for the naive run (at most all)"
    )
    parser.add_argument("--threads", type=int, default=1, help="inference threads, all runs")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument(
        "--decode-threads",
        type=int,
        default=None,
        help="prepare threads (default: the settings' default)",
    )
    parser.add_argument(
        "--poll-records",
        type=int,
        default=None,
        help="frames per poll batch (default: the settings' default)",
    )
    parser.add_argument("--full-share", type=float, default=0.05, help="plankton full frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved raw/pipeline pairs")
    parser.add_argument(
        "--otolith-model",
        type=Path,
        default=None,
        help="otolith model dir (default: see --otolith-build)",
    )
    parser.add_argument(
        "--otolith-build",
        choices=["committed", "quick", "full-arch"],
        default="committed",
        help="without --otolith-model: the committed models/otolith, the tests' quick "
        "artifact, or the default training plan's architecture trained for seconds",
    )
    parser.add_argument("--note", default=None, help="recorded in the JSON (a shared machine)")
    args = parser.parse_args()
    console = Console()
    console.width = max(console.width, 110)  # the table, also when piped to a file
    tasks = TASKS if args.task == "all" else (args.task,)
    load_before, steal_before = os.getloadavg(), _steal_s()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        otolith, source = None, None
        if "otolith" in tasks or args.otolith_model is not None:
            otolith, source = otolith_model(args.otolith_model, Path(tmp), args.otolith_build)
        models = Models(
            resolve_model_dir(PLANKTON_DIR), otolith, resolve_model_dir(FISH_DIR), source
        )
        for task in tasks:
            # A fresh broker per task: Tansu keeps every message in memory, and after the
            # plankton runs (about 250 MB) the otolith model ran 16 % slower beside it
            # (pipeline / raw 0.85, against 0.93 with a broker of its own).
            with EmbeddedBroker() as broker:
                results[task] = run_task(args, task, models, broker, Path(tmp), console)
    _write(results, args.note, load_before, _steal_s() - steal_before)
    console.print(_table(results))
    console.print(
        f"batch latency: polled -> stored + committed, in the daemon; results in {RESULTS}"
    )


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _steal_s() -> float:
    """CPU seconds the hypervisor gave to others (all CPUs), from /proc/stat (0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


if __name__ == "__main__":
    main()
