"""What sharing the fish gallery through Kafka costs the fish pipeline (issue 23).

The fish workload of ``benchmarks/pipeline.py`` (6,000 side views of the demo tank's seven
fish, two of them strangers, so new ids are enrolled along the way) is published once to a
Tansu broker; then the daemon consumes it again and again, each run in a fresh consumer group
with a fresh store (and so a fresh gallery topic), in a child process, runs interleaved:

``shared``    this checkout, the gallery shared through its compacted topic (the default)
``file``      this checkout, ``tasks.fish.options.shared_gallery: false`` (the working file)
``baseline``  another checkout's code (``--baseline-src DIR``, e.g. a worktree of the commit
              before), as it stood

Pipeline seconds are the daemon's own (first poll to the last committed batch). On a busy
machine those vary more than the gallery costs, so the head's own gallery work is also timed
alone, in CPU seconds: the same 6,000 embeddings (the model run once) decided batch by
batch as the head's ``finish`` does (``shared``: read what others wrote, decide, publish and
flush; ``file``: decide, save the file after an enrolment; ``baseline``: that checkout's
decide and save). Writes ``benchmarks/results/fish_gallery.json``.

    python benchmarks/fish_gallery.py [--frames 6000] [--repeats 3] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "fish_gallery.json"
FISH_DIR = HERE.parent / "models" / "fish"


def run_once(args: argparse.Namespace) -> None:
    """Child: one daemon run over the topic; prints its figures as JSON."""
    from seawatch.config import load_settings
    from seawatch.daemon import build_daemon

    options = {"enrol_new": True}
    if args.mode == "file":
        options["shared_gallery"] = False
    settings = load_settings(
        kafka__bootstrap_servers=args.bootstrap,
        kafka__topics=[args.topic],
        kafka__group_id=args.group,
        kafka__max_poll_interval_ms=6000,
        kafka__session_timeout_ms=6000,
        kafka__heartbeat_interval_ms=500,
        inference__threads=1,
        tasks={
            "plankton": {"enabled": False},
            "otolith": {"enabled": False},
            "fish": {"model_dir": str(FISH_DIR), "options": options},
        },
        storage__local__path=str(Path(args.store)),
        alerts__enabled=False,
        http__enabled=False,
    )
    daemon = build_daemon(settings)
    try:
        stats = daemon.run(lambda s: s.processed >= args.frames)
    finally:
        daemon.close()
    busy = stats.busy_seconds()
    print(json.dumps({"frames": stats.processed, "busy_s": busy, "fps": stats.processed / busy}))


def head_once(args: argparse.Namespace) -> None:
    """Child: the head's gallery work alone on saved embeddings; prints CPU us per frame."""
    import functools

    from threadpoolctl import threadpool_limits

    from seawatch.contracts.card import load_card
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.head import FishIdentifier

    threadpool_limits(1, user_api="blas")  # as the daemon sets it
    card, tmp = load_card(FISH_DIR), Path(args.store)
    outputs = np.load(tmp / "embeddings.npy")
    frames = [line.split("\t") for line in (tmp / "frames.tsv").read_text().splitlines()]
    gallery = Gallery.load(FISH_DIR / card.files["gallery"])
    head = FishIdentifier(None, card, gallery, max_batch=64)  # type: ignore[arg-type]
    shared, sources = None, None
    if args.mode != "baseline":
        from seawatch.models.fish.gallery_records import SightingSource

        sources = [SightingSource(u, int(t), f"bench/0/{k}") for k, (u, t) in enumerate(frames)]
    if args.mode == "shared":
        from seawatch.config import KafkaSettings
        from seawatch.models.fish.gallery_log import GalleryLog
        from seawatch.models.fish.shared_gallery import SharedGallery

        kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
        log = functools.partial(GalleryLog, kafka, f"{args.group}.fish-gallery", create=True)
        shared = SharedGallery(gallery, log, threshold=head.threshold, model=card.release)
        shared.sync()  # connected and read before the clock starts, as after a first batch
    started = time.process_time()
    for i in range(0, len(outputs), 64):
        embeddings = head.normalise(outputs[i : i + 64])
        batch = sources[i : i + 64] if sources is not None else None
        if shared is not None:
            shared.sync()
            decided = head.decide(embeddings, sources=batch)
            pairs = zip(decided, batch, strict=True)
            shared.publish([(d.individual, d.new_individual, s) for d, s in pairs if d.kept_view])
        else:
            decided = head.decide(embeddings, sources=batch) if batch else head.decide(embeddings)
            if any(d.new_individual for d in decided):
                gallery.save(tmp / f"{args.group}.npz")
    cpu = time.process_time() - started
    if shared is not None:
        shared.close()
    print(json.dumps({"cpu_us_per_frame": cpu / len(outputs) * 1e6, "ids": len(gallery)}))


def _embeddings(messages, tmp: Path) -> None:
    """The model's outputs for every frame, once, for the head-only runs."""
    import cv2

    from seawatch.contracts.card import ONNX_FILE
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.head import prepare_fish

    with OnnxRuntimeBackend(FISH_DIR / ONNX_FILE, threads=1) as backend:
        inputs = np.stack(
            [
                prepare_fish(cv2.imdecode(np.frombuffer(m.value, np.uint8), 1), 64, 160)
                for m in messages
            ]
        )
        out = np.concatenate([backend.run(inputs[i : i + 64]) for i in range(0, len(inputs), 64)])
    np.save(tmp / "embeddings.npy", out)
    rows = [f"{m.meta.uid}\t{m.meta.captured_at_ns}" for m in messages]
    (tmp / "frames.tsv").write_text("\n".join(rows))


def _child(args, mode: str, src: Path, topic: str, n: int, tmp: Path, part="pipeline") -> dict:
    group = f"fg-{mode}-{time.time_ns()}"
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--child", "--mode", mode, "--bootstrap", args.bootstrap]
    command += ["--topic", topic, "--group", group, "--frames", str(n), "--part", part]
    command += ["--store", str(tmp if part == "head" else tmp / group / "store.db")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--note", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="shared", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--topic", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--group", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--part", default="pipeline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (head_once if args.part == "head" else run_once)(args)
        return

    from pipeline_tasks import task_messages
    from seawatch.ingest.broker import EmbeddedBroker
    from seawatch.ingest.kafka_io import Publisher, ensure_topics
    from seawatch.ingest.publish import publish_messages

    own = HERE.parent / "src"
    modes = {"shared": own, "file": own}
    if args.baseline_src is not None:
        modes["baseline"] = args.baseline_src.resolve()
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    heads: dict[str, list[dict]] = {mode: [] for mode in modes}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        args.bootstrap = broker.bootstrap_servers
        topic = "bench.fish-gallery.frames.fish"
        messages = task_messages("fish", args.frames, seed=0, full_share=0.0)
        ensure_topics(broker.bootstrap_servers, [topic, "frames.dlq"], 4)
        publisher = Publisher(broker.bootstrap_servers)
        try:
            publish_messages(publisher, topic, messages)
        finally:
            publisher.close()
        _embeddings(messages, Path(tmp))
        for repeat in range(args.repeats):
            for mode, src in modes.items():
                result = _child(args, mode, src, topic, args.frames, Path(tmp))
                runs[mode].append(result)
                head = _child(args, mode, src, topic, args.frames, Path(tmp), "head")
                heads[mode].append(head)
                print(
                    f"repeat {repeat} {mode:8s} pipeline {result['fps']:7.0f} frames/s, "
                    f"gallery work {head['cpu_us_per_frame']:5.1f} us CPU a frame",
                    flush=True,
                )
    medians = {mode: statistics.median(r["fps"] for r in rs) for mode, rs in runs.items()}
    head_us = {m: statistics.median(r["cpu_us_per_frame"] for r in rs) for m, rs in heads.items()}
    for mode, fps in medians.items():
        print(f"{mode:8s} median {fps:7.0f} frames/s, gallery work {head_us[mode]:5.1f} us CPU")
    data = {
        "frames": args.frames,
        "repeats": args.repeats,
        "runs": runs,
        "median_fps": medians,
        "head_runs": heads,
        "median_gallery_cpu_us_per_frame": head_us,
        "shared_over_file": medians["shared"] / medians["file"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_1m_after": os.getloadavg()[0],
        "note": args.note,
        "command": "python benchmarks/fish_gallery.py " + " ".join(sys.argv[1:]),
    }
    if "baseline" in medians:
        data["shared_over_baseline"] = medians["shared"] / medians["baseline"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
