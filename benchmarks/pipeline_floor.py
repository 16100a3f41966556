"""The floor under ``benchmarks/pipeline.py``: what each stage of a frame's way costs alone,
and how fast any Python process on this machine could go.

On the benchmark's frames (6,000 plankton ROI frames by default) on a fresh Tansu broker, each
stage is a separate pass over every frame with its own consumer group, for both Kafka clients:

a  kafka-python consume only (``FrameSource``: the daemon's consumer and its settings)
b  confluent-kafka consume only (librdkafka: fetch and parsing in C, off the GIL)
c  + headers and JPEG decode (``parse_headers``, ``decode_image``)
d  + the daemon's prepare (``FramePreparer.prepare_many``: decode, ROI segmentation and
     morphometrics, the head's ``prepare``)
e  + the router's ``stage`` and batched ONNX Runtime inference on a second thread (up to the
     daemon's batches in flight), as the daemon runs it
f  the daemon itself (``build_daemon(...).run``: + the heads' finish, records, the SQLite
     store, crops, offsets committed), kafka-python; its CPU counted from its first poll

Prints frames/s and process CPU microseconds per frame of each pass (every thread of the
process: a Kafka client's network thread and ORT's too), the inference thread's own CPU, and
the ceiling: the machine's cores divided by the CPU a frame needs, and the GIL's ceiling (one
core for everything but ONNX Runtime), as a fraction of the limit (ORT alone, best of a sweep
of threads and batch sizes, as ``pipeline.py``). Holds ``/tmp/seawatch-bench.lock``.

    python benchmarks/pipeline_floor.py [--task plankton-roi|fish] [--frames 6000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline import WORKLOADS, _publish, _settings
from pipeline_peers import cpus, run_all, sweep_limit
from pipeline_tasks import FISH_DIR, PLANKTON_DIR, Models, model_inputs, task_messages
from seawatch.config import Settings, resolve_model_dir
from seawatch.contracts.card import ONNX_FILE
from seawatch.contracts.frames import parse_headers
from seawatch.daemon import build_daemon, build_router
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.decode import DecodeLimits, decode_image
from seawatch.ingest.kafka_io import FrameSource
from seawatch.ingest.prepare import FramePreparer, Rejected

LOCK = Path("/tmp/seawatch-bench.lock")
STAGES = ("consume", "decode", "prepare", "infer")


@dataclass(slots=True)
class Record:
    """A confluent-kafka message seen as the kafka-python record the preparer reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp: int


Client = tuple[Callable[[], list], Callable[[], None]]  # poll a batch, close


def _kafka_python(settings: Settings, group: str) -> Client:
    source = FrameSource(settings.kafka, group_id=group)
    kafka = settings.kafka
    wait_ms = settings.inference.max_wait_ms
    return lambda: source.poll_batch(kafka.max_poll_records, wait_ms), source.close


def _confluent(settings: Settings, group: str) -> Client:
    from confluent_kafka import Consumer

    kafka = settings.kafka
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": kafka.auto_offset_reset,
            "fetch.max.bytes": kafka.fetch_max_bytes,
            "max.partition.fetch.bytes": kafka.max_message_bytes,
            "fetch.wait.max.ms": kafka.fetch_max_wait_ms,
        }
    )
    consumer.subscribe(list(kafka.topics))

    def poll() -> list:
        messages = consumer.consume(kafka.max_poll_records, timeout=0.2)
        return [
            Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers(),
                   m.timestamp()[1])
            for m in messages if m.error() is None
        ]  # fmt: skip

    return poll, consumer.close


CLIENTS = {"kafka-python": _kafka_python, "confluent": _confluent}


def _decode(records: list, limits: DecodeLimits) -> None:
    now = time.time_ns()
    for r in records:
        meta = parse_headers(r.headers or [], topic=r.topic, key=r.key, now_ns=now)
        decode_image(r.value, meta.content_type, limits)


def one_pass(settings: Settings, client: str, stage: str, n: int, group: str) -> dict:
    """Consume ``n`` frames with ``client`` and do the work up to ``stage`` on each."""
    router = build_router(settings) if stage in ("prepare", "infer") else None
    preparer = FramePreparer(settings.ingest, router.heads) if router else None
    limits = DecodeLimits()
    infer_pool = ThreadPoolExecutor(1, thread_name_prefix="infer")
    in_flight: deque = deque()
    depth = settings.inference.max_batches_in_flight
    infer_cpu = [0.0]

    def infer(work) -> None:
        cpu0 = time.thread_time()
        router.infer(work)
        infer_cpu[0] += time.thread_time() - cpu0

    poll, close = CLIENTS[client](settings, group)
    records: list = []
    while not records:  # the group join and the first fetch stay out of the timing
        records = poll()
    seen, started, cpu0 = 0, time.perf_counter(), time.process_time()
    while seen < n:
        seen += len(records)
        if stage == "decode":
            _decode(records, limits)
        elif preparer is not None and records:
            frames = [p for p in preparer.prepare_many(records) if not isinstance(p, Rejected)]
            if stage == "infer":
                in_flight.append(infer_pool.submit(infer, router.stage(frames)))
                while len(in_flight) > depth:
                    in_flight.popleft().result()
        if seen < n:
            records = poll()
    for future in in_flight:
        future.result()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    infer_pool.shutdown()
    close()
    if preparer is not None:
        preparer.close()
    if router is not None:
        router.close()
    return {
        "client": client,
        "stage": stage,
        "frames_per_s": round(seen / seconds, 1),
        "cpu_us_per_frame": round(1e6 * cpu / seen, 1),
        "infer_thread_cpu_us_per_frame": round(1e6 * infer_cpu[0] / seen, 1),
    }


def daemon_pass(settings: Settings, n: int, group: str, db: Path) -> dict:
    """The daemon over the same ``n`` frames (a group and a store of its own); CPU from the
    loop's start (the models and the store are built before)."""
    kafka = settings.kafka.model_copy(update={"group_id": group})
    local = settings.storage.local.model_copy(update={"path": db})
    storage = settings.storage.model_copy(update={"local": local})
    daemon = build_daemon(settings.model_copy(update={"kafka": kafka, "storage": storage}))
    cpu0 = time.process_time()
    try:
        stats = daemon.run(lambda s: s.processed >= n)
    finally:
        cpu = time.process_time() - cpu0
        daemon.close()
    return {
        "client": "kafka-python",
        "stage": "daemon",
        "frames_per_s": round(stats.processed / stats.busy_seconds(), 1),
        "cpu_us_per_frame": round(1e6 * cpu / stats.processed, 1),
        "infer_thread_cpu_us_per_frame": float("nan"),
        "stage_us_per_frame": {
            k: round(1e6 * v / stats.processed, 1) for k, v in stats.stage_seconds.items()
        },
    }


@contextmanager
def bench_lock() -> Iterator[None]:
    """Hold the shared benchmark lock (wait while another benchmark holds it)."""
    while True:
        try:
            fd = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            time.sleep(5)
    os.write(fd, f"pipeline_floor.py pid {os.getpid()}\n".encode())
    os.close(fd)
    try:
        yield
    finally:
        LOCK.unlink(missing_ok=True)


def ceiling(rows: list[dict], limit_fps: float, model_cpu_us: float) -> dict:
    """The best frames/s the measured costs allow: the cores over a frame's CPU, and one
    core (the GIL) over its CPU outside ONNX Runtime; each as a fraction of the limit.
    ``by_cpu``: the same fraction from CPU alone (insensitive to a loaded machine): the
    model's CPU a frame over the whole frame's, i.e. what the limit would be if the model
    alone used every core at its one-thread cost."""
    out = {}
    for client in CLIENTS:
        full = min((r for r in rows if r["client"] == client and r["stage"] == "infer"),
                   key=lambda r: r["cpu_us_per_frame"])  # fmt: skip
        gil_us = full["cpu_us_per_frame"] - full["infer_thread_cpu_us_per_frame"]
        best = min(cpus() * 1e6 / full["cpu_us_per_frame"], 1e6 / gil_us)
        out[client] = {
            "cpu_bound_frames_per_s": round(cpus() * 1e6 / full["cpu_us_per_frame"], 1),
            "gil_bound_frames_per_s": round(1e6 / gil_us, 1),
            "best_frames_per_s": round(best, 1),
            "best_over_limit": round(best / limit_fps, 3),
            "by_cpu": round(model_cpu_us / full["cpu_us_per_frame"], 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["plankton-roi", "fish"], default="plankton-roi")
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    args.decode_threads = args.poll_records = None
    args.threads, args.max_batch = 1, 64
    task, full_share, _ = WORKLOADS[args.task]
    messages = task_messages(task, args.frames, seed=args.seed, full_share=full_share)
    models = Models(resolve_model_dir(PLANKTON_DIR), None, resolve_model_dir(FISH_DIR), None)
    rows: list[dict] = []
    with bench_lock(), tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = _settings(args, broker, models, Path(tmp), args.task)
        _publish(settings, messages)
        tensor = model_inputs(settings, messages)
        onnx = models.of(task) / ONNX_FILE
        limit = sweep_limit(onnx, tensor)
        best = OnnxRuntimeBackend(onnx, threads=limit["threads"])
        best.run(tensor[: limit["batch"]])
        cpu0 = time.process_time()
        limit_fps = len(messages) / run_all(best, tensor, limit["batch"])
        limit_cpu_us = 1e6 * (time.process_time() - cpu0) / len(messages)
        best.close()
        one = OnnxRuntimeBackend(onnx, threads=1)  # the model's own CPU a frame, no spinning
        one.run(tensor[:64])
        cpu0 = time.process_time()
        run_all(one, tensor, 64)
        model_cpu_us = 1e6 * (time.process_time() - cpu0) / len(messages)
        one.close()
        print(f"{args.task}: {len(messages)} frames; limit {limit_fps:.0f} frames/s "
              f"(ORT threads {limit['threads']}, batch {limit['batch']}); "
              f"load {os.getloadavg()[0]:.1f}; ORT alone: {limit_cpu_us:.0f} CPU us a frame at "
              f"the limit's threads, {model_cpu_us:.0f} at one thread, batch 64")  # fmt: skip
        print(f"{'client':<13} {'stage':<8} {'frames/s':>9} {'CPU us/frame':>13} {'infer us':>9}")
        for repeat in range(args.repeats):
            for stage in STAGES:
                for client in CLIENTS:  # interleaved: each stage's pair side by side
                    group = f"floor-{client}-{stage}-{repeat}"
                    row = one_pass(settings, client, stage, len(messages), group)
                    rows.append(row)
                    print(f"{client:<13} {stage:<8} {row['frames_per_s']:>9.0f} "
                          f"{row['cpu_us_per_frame']:>13.0f} "
                          f"{row['infer_thread_cpu_us_per_frame']:>9.0f}", flush=True)  # fmt: skip
            db = Path(tmp) / f"floor-{repeat}.db"
            row = daemon_pass(settings, len(messages), f"floor-daemon-{repeat}", db)
            rows.append(row)
            print(f"{'kafka-python':<13} {'daemon':<8} {row['frames_per_s']:>9.0f} "
                  f"{row['cpu_us_per_frame']:>13.0f}   stages (wall us/frame) "
                  f"{row['stage_us_per_frame']}", flush=True)  # fmt: skip
    ceil = ceiling(rows, limit_fps, model_cpu_us)
    for client, c in ceil.items():
        print(f"{client}: at most {c['best_frames_per_s']:.0f} frames/s "
              f"(cores {c['cpu_bound_frames_per_s']:.0f}, GIL {c['gil_bound_frames_per_s']:.0f})"
              f" = {c['best_over_limit']:.2f} x the limit; by CPU alone "
              f"{c['by_cpu']:.2f}")  # fmt: skip
    if args.out is not None:
        result = {"task": args.task, "frames": len(messages), "cpus": cpus(),
                  "limit_frames_per_s": round(limit_fps, 1), "limit": limit,
                  "limit_cpu_us_per_frame": round(limit_cpu_us, 1),
                  "model_cpu_us_per_frame_one_thread": round(model_cpu_us, 1), "rows": rows,
                  "ceiling": ceil, "load_after": os.getloadavg(),
                  "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
