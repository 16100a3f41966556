"""What sharing the fish gallery through Kafka costs the fish pipeline (issue 23).

The fish workload of ``benchmarks/pipeline.py`` (6,000 side views of the demo tank's seven
fish, two of them strangers, so new ids are enrolled along the way) is published once to a
Tansu broker; then the daemon consumes it again and again, each run in a fresh consumer group
with a fresh store (and so a fresh gallery topic), in a child process, runs interleaved:

``shared``    this checkout, the gallery shared through its compacted topic (the default)
``file``      this checkout, ``tasks.fish.options.shared_gallery: false`` (the working file)
``baseline``  another checkout's code (``--baseline-src DIR``, e.g. a worktree of the commit
              before), as it stood

Pipeline seconds are the daemon's own (first poll to the last committed batch). Writes
``benchmarks/results/fish_gallery.json``.

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


def _child(args, mode: str, src: Path, topic: str, n: int, tmp: Path) -> dict:
    group = f"fg-{mode}-{time.time_ns()}"
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--child", "--mode", mode, "--bootstrap", args.bootstrap]
    command += ["--topic", topic, "--group", group, "--frames", str(n)]
    command += ["--store", str(tmp / group / "store.db")]
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
    args = parser.parse_args()
    if args.child:
        run_once(args)
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
        for repeat in range(args.repeats):
            for mode, src in modes.items():
                result = _child(args, mode, src, topic, args.frames, Path(tmp))
                runs[mode].append(result)
                print(f"repeat {repeat} {mode:8s} {result['fps']:7.0f} frames/s", flush=True)
    medians = {mode: statistics.median(r["fps"] for r in rs) for mode, rs in runs.items()}
    for mode, fps in medians.items():
        print(f"{mode:8s} median {fps:7.0f} frames/s")
    data = {
        "frames": args.frames,
        "repeats": args.repeats,
        "runs": runs,
        "median_fps": medians,
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
