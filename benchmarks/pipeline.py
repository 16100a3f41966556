"""Pipeline throughput against its limit and against the naive script, in one run.

Same model, same inference threads, same frames for all three:

1. raw     ONNX Runtime alone on pre-decoded, pre-segmented tensors in batches: the limit
           of this machine for this model.
2. pipeline  the daemon: Kafka (real Tansu broker) in -> decode -> segment -> infer ->
           SQLite store (durable) -> offsets committed.
3. naive   the script a scientist would write: one message at a time, batch 1, one
           database commit and one offset commit per frame.

Prints pipeline/raw and pipeline/naive and the latency percentiles, and writes
``benchmarks/results/pipeline.json``.

    python benchmarks/pipeline.py [--frames 2000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from seawatch.config import load_settings, resolve_model_dir
from seawatch.daemon import build_daemon
from seawatch.frames import Frame, SourceRef
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.inference.preprocess import batch_tensor, prepare_roi, to_gray8
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.decode import DecodeLimits, decode_image
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.prepare import FramePreparer
from seawatch.ingest.publish import publish_messages
from seawatch.ingest.segment import SegmentParams, measure_roi, segment_full
from seawatch.ingest.synthetic_stream import synthetic_stream
from seawatch.models.card import ONNX_FILE, load_card

RESULTS = Path(__file__).parent / "results" / "pipeline.json"


def _crops(messages, size: int) -> list[np.ndarray]:
    """The model inputs of every frame, made by the pipeline's own prepare stage."""
    preparer = FramePreparer(load_settings().ingest, input_size=size)
    crops: list[np.ndarray] = []
    for offset, m in enumerate(messages):
        frame = Frame(m.meta, SourceRef("bench", 0, offset), m.value, 0, 0)
        crops.extend(preparer.prepare_frame(frame).crops)
    preparer.close()
    return crops


def bench_raw(backend: OnnxRuntimeBackend, tensor: np.ndarray, batch: int) -> float:
    """Seconds for ONNX Runtime to classify every crop once, in batches of ``batch``."""
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


def bench_naive(settings, n: int, onnx: Path, threads: int) -> float:
    """The straightforward script: poll one, decode, infer batch 1, insert+commit, commit."""
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    card = load_card(resolve_model_dir(settings.inference.model_dir))
    backend = OnnxRuntimeBackend(onnx, threads=threads)
    db = sqlite3.connect(settings.storage.local.path.with_name("naive.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS objects (frame TEXT, idx INT, taxon TEXT, p REAL)")
    consumer = KafkaConsumer(
        *settings.kafka.topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id="naive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
    )
    params, limits, done, started = SegmentParams(), DecodeLimits(), 0, None
    while done < n:
        for records in consumer.poll(timeout_ms=500, max_records=1).values():
            for r in records:
                started = started or time.perf_counter()
                headers = dict(r.headers)
                ct = headers["content-type"].decode()
                gray = to_gray8(decode_image(r.value, ct, limits))
                kind = headers["frame-kind"].decode()
                pixel = float(headers.get("pixel-size-um", b"0") or 0) or None
                objects = (
                    segment_full(gray, params, pixel)
                    if kind == "full"
                    else [measure_roi(gray, params, pixel)]
                )
                for obj in objects:
                    probs = backend.run(batch_tensor([prepare_roi(obj.image, card.input.size)]))
                    k = int(probs[0].argmax())
                    db.execute(
                        "INSERT INTO objects VALUES (?,?,?,?)",
                        (
                            f"{r.partition}/{r.offset}",
                            obj.index,
                            card.class_names[k],
                            float(probs[0, k]),
                        ),
                    )
                db.commit()
                consumer.commit(
                    {
                        TopicPartition(r.topic, r.partition): OffsetAndMetadata(
                            r.offset + 1, None, -1
                        )
                    }
                )
                done += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    db.close()
    return elapsed


def _publish(settings, messages) -> None:
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        publish_messages(publisher, kafka.topics[0], messages)
    finally:
        publisher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument(
        "--naive-frames", type=int, default=None, help="frames for the naive run (default: all)"
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
    parser.add_argument("--full-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved raw/pipeline pairs")
    args = parser.parse_args()
    console = Console()

    messages = list(
        synthetic_stream(
            args.frames,
            seed=args.seed,
            full_share=args.full_share,
            start_ns=time.time_ns() - args.frames * 10**6,
        )
    )
    model_dir = resolve_model_dir(Path("models/plankton"))
    card = load_card(model_dir)
    crops = _crops(messages, card.input.size)
    tensor = batch_tensor(crops)
    console.print(f"{len(messages)} frames, {len(crops)} objects, model {card.name}")

    onnx = model_dir / ONNX_FILE
    backend = OnnxRuntimeBackend(onnx, threads=args.threads)
    backend.run(tensor[: args.max_batch])  # warm-up
    raw_runs: list[float] = []
    pipe_runs: list[tuple[float, object]] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        tuning = {}
        if args.decode_threads:
            tuning["ingest__decode_threads"] = args.decode_threads
        if args.poll_records:
            tuning["kafka__max_poll_records"] = args.poll_records
        for repeat in range(args.repeats):
            # Interleaved: this machine is shared and noisy, so each ratio pairs runs taken
            # side by side, and the median of the ratios is reported.
            raw_runs.append(bench_raw(backend, tensor, args.max_batch))
            settings = load_settings(
                **tuning,
                kafka__bootstrap_servers=broker.bootstrap_servers,
                kafka__topics=[f"bench{repeat}.frames.plankton"],
                kafka__group_id=f"bench{repeat}",
                kafka__max_poll_interval_ms=6000,
                kafka__session_timeout_ms=6000,
                kafka__heartbeat_interval_ms=500,
                inference__threads=args.threads,
                inference__max_batch=args.max_batch,
                inference__model_dir=str(model_dir),
                storage__local__path=str(Path(tmp) / f"bench{repeat}.db"),
            )
            _publish(settings, messages)
            pipe_runs.append(bench_pipeline(settings, len(messages)))
            console.print(
                f"repeat {repeat + 1}/{args.repeats}: raw {len(messages) / raw_runs[-1]:.0f} "
                f"frames/s, pipeline {len(messages) / pipe_runs[-1][0]:.0f} frames/s"
            )
        naive_n = args.naive_frames or len(messages)
        naive_s = bench_naive(settings, naive_n, onnx, args.threads)
    backend.close()
    ratios = [raw / pipe for raw, (pipe, _) in zip(raw_runs, pipe_runs, strict=True)]
    middle = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
    raw_s, (pipe_s, stats) = raw_runs[middle], pipe_runs[middle]

    frames = len(messages)
    raw_fps, pipe_fps, naive_fps = frames / raw_s, frames / pipe_s, naive_n / naive_s
    s50, s99 = stats.service_percentiles(50, 99)
    result = {
        "frames": frames,
        "objects": len(crops),
        "threads": args.threads,
        "decode_threads": settings.ingest.decode_threads,
        "max_poll_records": settings.kafka.max_poll_records,
        "max_batches_in_flight": settings.inference.max_batches_in_flight,
        "max_batch": args.max_batch,
        "model": f"{card.name} {card.version}",
        "raw_frames_per_s": round(raw_fps, 1),
        "raw_objects_per_s": round(len(crops) / raw_s, 1),
        "pipeline_frames_per_s": round(pipe_fps, 1),
        "pipeline_objects_per_s": round(stats.objects / pipe_s, 1),
        "naive_frames_per_s": round(naive_fps, 1),
        "naive_frames": naive_n,
        "pipeline_over_raw": round(pipe_fps / raw_fps, 3),
        "pipeline_over_raw_all_repeats": [round(r, 3) for r in ratios],
        "pipeline_over_naive": round(pipe_fps / naive_fps, 2),
        "pipeline_stage_seconds": {k: round(v, 2) for k, v in stats.stage_seconds.items()},
        "pipeline_model_seconds": round(stats.infer_ms_total / 1000, 2),
        "raw_seconds": round(raw_s, 2),
        "batch_latency_p50_ms": round(s50, 1),
        "batch_latency_p99_ms": round(s99, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={_cpus()}".strip(),
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="pipeline benchmark (same model, threads and frames)")
    for column in ("run", "frames/s", "objects/s", "ratio"):
        table.add_column(column, justify="right")
    table.add_row("raw ONNX Runtime", f"{raw_fps:.0f}", f"{len(crops) / raw_s:.0f}", "1.00")
    table.add_row(
        "pipeline",
        f"{pipe_fps:.0f}",
        f"{stats.objects / pipe_s:.0f}",
        f"{pipe_fps / raw_fps:.2f} of raw",
    )
    table.add_row("naive script", f"{naive_fps:.0f}", "", f"pipeline = {pipe_fps / naive_fps:.1f}x")
    console.print(table)
    console.print(
        f"pipeline batch latency (polled -> stored + committed): "
        f"p50 {s50:.0f} ms, p99 {s99:.0f} ms; results in {RESULTS}"
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
