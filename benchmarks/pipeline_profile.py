"""One ``seawatch`` pipeline run of one workload of ``benchmarks/pipeline.py``, for a profiler.

The same frames, broker, settings and daemon as the benchmark's pipeline run, once, without
the limit sweep and the peers: prints the frames per second, the stage timers and the CPU
seconds per frame (process time: less sensitive to a shared machine's load than wall time).
Run it under py-spy for a flame graph:

    py-spy record -o benchmarks/results/fish_profile.svg -- \
        python benchmarks/pipeline_profile.py --task fish --frames 3000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline import WORKLOADS, _publish, _settings, bench_pipeline
from pipeline_tasks import FISH_DIR, PLANKTON_DIR, Models, task_messages
from seawatch.config import resolve_model_dir
from seawatch.ingest.broker import EmbeddedBroker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["plankton-roi", "plankton-full", "fish"], default="fish")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1, help="inference threads")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decode-threads", type=int, default=None, help="ingest.decode_threads")
    args = parser.parse_args()
    args.poll_records = None
    task, full_share, _ = WORKLOADS[args.task]
    messages = task_messages(task, args.frames, seed=args.seed, full_share=full_share)
    models = Models(resolve_model_dir(PLANKTON_DIR), None, resolve_model_dir(FISH_DIR), None)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = _settings(args, broker, models, Path(tmp), args.task)
        _publish(settings, messages)
        cpu0 = time.process_time()
        seconds, stats = bench_pipeline(settings, len(messages))
        cpu = time.process_time() - cpu0
    n = len(messages)
    print(f"{args.task}: {n} frames in {seconds:.2f} s = {n / seconds:.0f} frames/s")
    print(f"process CPU {cpu:.2f} s = {1000 * cpu / n:.3f} ms a frame")
    print(f"model {stats.infer_ms_total / 1000:.2f} s")
    for stage, s in sorted(stats.stage_seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<12} {s:7.2f} s  {1000 * s / n:.3f} ms a frame")


if __name__ == "__main__":
    main()
