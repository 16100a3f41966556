"""Pipeline throughput against the machine's limit and against the peers, per workload, in
one run.

For each workload (plankton ROI frames, plankton full frames, fish side views, otolith
specimens): the same frames on the same real Tansu broker (a fresh one per workload), the
same committed model, runs interleaved so that each ratio pairs runs taken side by side:

1. limit     ONNX Runtime alone on that workload's model inputs, pre-made by the daemon's own
             prepare stage (decoded, segmented, cropped), with the best threads and batch
             size of a sweep (1 and every core; 16, 64, 256): what this machine can do with
             this model, the yardstick.
2. raw       the same at the daemon's own inference threads and batch (the old yardstick).
3. pipeline  the daemon: Kafka in -> decode -> segment/prepare -> infer -> SQLite store
             (durable) -> offsets committed.
4. quix      the Quix Streams peer (``benchmarks/peers/quix_app.py``): the same decode and
             prepare code, ONNX Runtime per message, a batching SQLite sink (confluent-kafka).
5. naive     the script a scientist would write: one message at a time, batch 1, one
             database commit and one offset commit per frame (once, fewer frames).

Prints pipeline/limit, pipeline/quix and pipeline/naive and the latency percentiles per
workload, and writes ``benchmarks/results/pipeline.json``, or ``--out FILE`` (``{"tasks":
{workload: {...}}}``; a run of some workloads keeps the others' last blocks).

    python benchmarks/pipeline.py [--task all] [--frames N] [--threads 1] [--no-quix]

The otolith block uses the committed ``models/otolith`` (``--otolith-build committed``, the
default), ``--otolith-model DIR``, or an artifact trained for the run (``full-arch``: the
default architecture trained for seconds; ``quick``: the tests' tiny network); the JSON says
which. The Quix peer needs ``pip install quixstreams`` (the ``bench`` extra).
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

from pipeline_peers import bench_quix, cpus, run_all, sweep_limit
from pipeline_tasks import (
    FISH_DIR,
    PLANKTON_DIR,
    Models,
    bench_naive,
    model_inputs,
    otolith_model,
    served_dir,
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
# workload: (task, share of full frames, default frames)
WORKLOADS = {
    "plankton-roi": ("plankton", 0.0, 6000),
    "plankton-full": ("plankton", 1.0, 300),
    "fish": ("fish", 0.0, 6000),
    "otolith": ("otolith", 0.0, 200),
}


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


def _settings(args, broker: EmbeddedBroker, models: Models, tmp: Path, workload: str, repeat=""):
    """The daemon's settings for one run: every available head served, one topic."""
    name, task = f"{workload}{repeat}", WORKLOADS[workload][0]
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


def run_task(args, workload: str, models: Models, broker, tmp: Path, console: Console) -> dict:
    """Limit, raw, pipeline and Quix (interleaved repeats), then naive, for one workload."""
    task, full_share, default_frames = WORKLOADS[workload]
    n = args.frames or default_frames
    messages = task_messages(task, n, seed=args.seed, full_share=full_share)
    served = served_dir(task, models.of(task))  # otolith: the graph of the views served
    card = load_card(served)
    onnx = served / ONNX_FILE
    base = _settings(args, broker, models, tmp, workload)
    tensor = model_inputs(base, messages)
    frames = len(messages)
    console.print(
        f"[bold]{workload}[/]: {frames} frames, {len(tensor)} model inputs "
        f"{tuple(tensor.shape[1:])}, model {card.name} {card.version}"
    )
    limit = sweep_limit(onnx, tensor)
    best = OnnxRuntimeBackend(onnx, threads=limit["threads"])
    backend = OnnxRuntimeBackend(onnx, threads=args.threads)
    batch = base.tasks[task].batch(args.max_batch)  # raw runs the batches the daemon runs
    backend.run(tensor[:batch])  # warm-up
    best.run(tensor[: limit["batch"]])
    runs: dict[str, list] = {"limit": [], "raw": [], "pipeline": [], "quix": []}
    for repeat in range(args.repeats):
        # Interleaved: this machine is shared and noisy, so each ratio pairs runs taken
        # side by side, and the median of the ratios is reported.
        runs["limit"].append(run_all(best, tensor, limit["batch"]))
        runs["raw"].append(run_all(backend, tensor, batch))
        settings = _settings(args, broker, models, tmp, workload, repeat)
        _publish(settings, messages)
        runs["pipeline"].append(bench_pipeline(settings, frames))
        line = (
            f"  repeat {repeat + 1}/{args.repeats}: limit {frames / runs['limit'][-1]:.0f}, "
            f"pipeline {frames / runs['pipeline'][-1][0]:.0f}"
        )
        if args.quix:
            peer = bench_quix(
                settings.kafka.bootstrap_servers, settings.kafka.topics[0], task,
                served, tmp / f"quix-{workload}{repeat}.db", frames, args.quix_threads,
            )  # fmt: skip
            runs["quix"].append(peer["seconds"])
            line += f", quix {frames / peer['seconds']:.0f}"
        console.print(line + " frames/s")
    backend.close()
    best.close()
    naive_n = min(args.naive_frames or frames, frames)
    naive_s = bench_naive(settings, task, naive_n, models, args.threads)
    pipe_s_all = [p for p, _ in runs["pipeline"]]
    over_limit = [lim / pipe for lim, pipe in zip(runs["limit"], pipe_s_all, strict=True)]
    over_raw = [raw / pipe for raw, pipe in zip(runs["raw"], pipe_s_all, strict=True)]
    over_quix = [q / pipe for q, pipe in zip(runs["quix"], pipe_s_all, strict=False)]
    middle = sorted(range(len(over_limit)), key=over_limit.__getitem__)[len(over_limit) // 2]
    pipe_s, stats = runs["pipeline"][middle]
    limit_s, raw_s = runs["limit"][middle], runs["raw"][middle]
    pipe_fps = frames / pipe_s
    inputs = stats.objects if task == "plankton" else stats.processed  # one input per frame
    s50, s99 = stats.service_percentiles(50, 99)
    block = {
        "task": task,
        "frames": frames,
        "full_frame_share": full_share,
        "objects": len(tensor),  # model inputs: plankton objects, one per otolith/fish frame
        "input_shape": list(tensor.shape[1:]),
        "cpus": cpus(),
        "threads": args.threads,
        "decode_threads": settings.ingest.decode_threads,
        "max_poll_records": settings.kafka.max_poll_records,
        "max_batches_in_flight": settings.inference.max_batches_in_flight,
        "max_batch": batch,
        "model": f"{card.name} {card.version}",
        "limit_threads": limit["threads"],
        "limit_batch": limit["batch"],
        "limit_sweep_objects_per_s": limit["sweep"],
        "limit_frames_per_s": round(frames / limit_s, 1),
        "raw_frames_per_s": round(frames / raw_s, 1),
        "raw_objects_per_s": round(len(tensor) / raw_s, 1),
        "pipeline_frames_per_s": round(pipe_fps, 1),
        "pipeline_objects_per_s": round(inputs / pipe_s, 1),
        "naive_frames_per_s": round(naive_n / naive_s, 1),
        "naive_frames": naive_n,
        "pipeline_over_limit": round(_median(over_limit), 3),
        "pipeline_over_limit_all_repeats": [round(r, 3) for r in over_limit],
        "pipeline_over_raw": round(_median(over_raw), 3),
        "pipeline_over_raw_all_repeats": [round(r, 3) for r in over_raw],
        "pipeline_over_naive": round(pipe_fps / (naive_n / naive_s), 2),
        "pipeline_stage_seconds": {k: round(v, 2) for k, v in stats.stage_seconds.items()},
        "pipeline_model_seconds": round(stats.infer_ms_total / 1000, 2),
        "pipeline_seconds": round(pipe_s, 2),
        "limit_seconds": round(limit_s, 2),
        "batch_latency_p50_ms": round(s50, 1),
        "batch_latency_p99_ms": round(s99, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    if over_quix:
        block["quix_frames_per_s"] = round(frames / _median(runs["quix"]), 1)
        block["quix_onnx_threads"] = args.quix_threads or "onnxruntime default"
        block["pipeline_over_quix"] = round(_median(over_quix), 3)
        block["pipeline_over_quix_all_repeats"] = [round(r, 3) for r in over_quix]
    if task == "otolith":
        block["model_source"] = models.otolith_source
    if task != "plankton":
        block["naive_note"] = "naive stores the first output only (no heat map, no gallery)"
    return block


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _table(results: dict) -> Table:
    table = Table(title="pipeline benchmark (per workload: same frames, model and broker)")
    columns = ("workload", "limit f/s", "pipe f/s", "pipe/limit", "quix f/s", "pipe/quix")
    for column in (*columns, "naive f/s", "pipe/naive", "p50/p99 ms"):
        table.add_column(column, justify="right")
    for workload, r in results.items():
        table.add_row(
            workload,
            f"{r['limit_frames_per_s']:.0f}",
            f"{r['pipeline_frames_per_s']:.0f}",
            f"{r['pipeline_over_limit']:.2f}",
            f"{r['quix_frames_per_s']:.0f}" if "quix_frames_per_s" in r else "-",
            f"{r['pipeline_over_quix']:.2f}" if "pipeline_over_quix" in r else "-",
            f"{r['naive_frames_per_s']:.0f}",
            f"{r['pipeline_over_naive']:.1f}x",
            f"{r['batch_latency_p50_ms']:.0f}/{r['batch_latency_p99_ms']:.0f}",
        )
    return table


def _write(
    results: dict, note: str | None, load_before: tuple, steal_s: float, out: Path = RESULTS
) -> None:
    """Write this run's task blocks to ``out``, keeping the blocks of tasks not run this time."""
    previous = json.loads(out.read_text()) if out.is_file() else {}
    tasks = {**previous.get("tasks", {}), **results}
    data = {
        "tasks": {w: tasks[w] for w in WORKLOADS if w in tasks},
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={cpus()}".strip(),
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_steal_s_during_run": round(steal_s, 2),  # taken by the host's other guests
        "note": note,
        "date": time.strftime("%Y-%m-%d"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*WORKLOADS, "all"], default="all", help="workload")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per workload (default: plankton ROI and fish 6000, plankton full frames "
        "300, otolith 200: long enough that filling and draining the pipeline weigh little)",
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
    parser.add_argument("--no-quix", dest="quix", action="store_false", help="skip the peer")
    parser.add_argument(
        "--quix-threads", type=int, default=0, help="the peer's ONNX threads (0: ORT default)"
    )
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
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="the results file (a development run: another)"
    )
    args = parser.parse_args()
    console = Console()
    console.width = max(console.width, 110)  # the table, also when piped to a file
    workloads = tuple(WORKLOADS) if args.task == "all" else (args.task,)
    tasks = {WORKLOADS[w][0] for w in workloads}
    load_before, steal_before = os.getloadavg(), _steal_s()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        otolith, source = None, None
        if "otolith" in tasks or args.otolith_model is not None:
            otolith, source = otolith_model(args.otolith_model, Path(tmp), args.otolith_build)
        models = Models(
            resolve_model_dir(PLANKTON_DIR), otolith, resolve_model_dir(FISH_DIR), source
        )
        for workload in workloads:
            # A fresh broker per workload: Tansu keeps every message in memory, and after the
            # plankton runs (about 250 MB) the otolith model ran 16 % slower beside it
            # (pipeline / raw 0.85, against 0.93 with a broker of its own).
            with EmbeddedBroker() as broker:
                results[workload] = run_task(args, workload, models, broker, Path(tmp), console)
    _write(results, args.note, load_before, _steal_s() - steal_before, args.out)
    console.print(_table(results))
    console.print(
        f"batch latency: polled -> stored + committed, in the daemon; results in {args.out}"
    )


def _steal_s() -> float:
    """CPU seconds the hypervisor gave to others (all CPUs), from /proc/stat (0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


if __name__ == "__main__":
    main()
