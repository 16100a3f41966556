"""CPU time of the daemon per plankton ROI frame, end to end: an A/B that load disturbs less.

``benchmarks/pipeline.py`` measures frames per second, which other jobs on a shared VM move
by tens of percent. This runs the same daemon on the same frames (a fresh Tansu broker,
``--frames`` ROI frames per run, the benchmark's settings) and reports the CPU seconds of
the daemon's process (every thread: loop, inference, Kafka I/O; the broker is a process
of its own and not counted) per frame, beside the frames per second. Run it once per
version of the code, alternating, e.g. for issue 26's OOD score:

    PYTHONPATH=src python benchmarks/pipeline_cpu.py --label now
    PYTHONPATH=/tmp/base/src python benchmarks/pipeline_cpu.py --label issue24

Prints one line per run and, with ``--out``, appends the runs to that JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from pipeline import _publish, _settings
from pipeline_tasks import FISH_DIR, PLANKTON_DIR, Models, task_messages
from seawatch.config import resolve_model_dir
from seawatch.daemon import build_daemon
from seawatch.ingest.broker import EmbeddedBroker


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(settings, frames: int) -> dict[str, float]:
    """One daemon run over ``frames`` published frames: CPU ms per frame, frames/s."""
    daemon = build_daemon(settings)  # model loading is not counted
    try:
        cpu, wall = _cpu_s(), time.perf_counter()
        stats = daemon.run(lambda s: s.processed >= frames)
        cpu, wall = _cpu_s() - cpu, time.perf_counter() - wall
    finally:
        daemon.close()
    return {
        "cpu_ms_per_frame": round(cpu / frames * 1000, 3),
        "frames_per_s": round(frames / stats.busy_seconds(), 1),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="the version of the code (recorded)")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON file the runs go to")
    args = parser.parse_args()
    tuning = SimpleNamespace(decode_threads=None, poll_records=None, threads=1, max_batch=64)
    messages = task_messages("plankton", args.frames, seed=0, full_share=0.0)
    runs = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        models = Models(resolve_model_dir(PLANKTON_DIR), None, resolve_model_dir(FISH_DIR), None)
        for repeat in range(args.repeats):
            settings = _settings(tuning, broker, models, Path(tmp), "plankton-roi", f"-{repeat}")
            _publish(settings, messages)
            runs.append(run_once(settings, args.frames) | {"load_1m": os.getloadavg()[0]})
            print(args.label, runs[-1], flush=True)
    if args.out is not None:
        data = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
        data["runs"] += [{"label": args.label, "frames": args.frames} | r for r in runs]
        args.out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
