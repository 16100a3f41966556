"""The demo's latency per task, lanes on and off, alternated (issue 26's done-when).

Runs ``seawatch demo``'s whole path in this process (:func:`seawatch.demo.run_demo`: the
embedded broker, the cruise feed with otolith specimens at one every 3 s per scanner, a
daemon per lane) ``--repeats`` times with the default lanes (otolith alone) and with every
task in one lane, alternated, and writes the latency published -> stored + committed, p50 /
p99 overall and per task, to ``benchmarks/results/demo_lanes.json``.

    python benchmarks/demo_lanes.py [--frames 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console

from seawatch.config import load_settings
from seawatch.demo import run_demo

RESULTS = Path(__file__).parent / "results"
ARMS = {"on": "otolith", "off": "main"}  # tasks.otolith.lane


def one_demo(tmp: Path, lane: str, frames: int, seed: int) -> dict:
    settings = load_settings(
        storage__local__path=str(tmp / f"demo-{lane}.db"), tasks={"otolith": {"lane": lane}}
    )
    quiet = Console(file=io.StringIO())
    result = run_demo(settings, frames=frames, broken_share=0.01, seed=seed, console=quiet)
    stats = result.stats
    p50, p99 = stats.latency_percentiles(50, 99)
    return {
        "frames": stats.frames,
        "frames_per_s": round(stats.frames / max(stats.busy_seconds(), 1e-9), 1),
        "p50_ms": round(p50),
        "p99_ms": round(p99),
        "tasks": {
            task: {"p50_ms": round(t50), "p99_ms": round(t99)}
            for task, (t50, t99) in stats.task_latency_percentiles(50, 99).items()
        },
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    runs: dict[str, list[dict]] = {name: [] for name in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, lane in ARMS.items():
                runs[name].append(one_demo(Path(tmp), lane, args.frames, seed=repeat))
                console.print(f"lanes {name}, run {repeat + 1}: {runs[name][-1]}")
    result = {
        "what": "seawatch demo, latency published -> stored + committed (ms)",
        "frames": args.frames,
        "otolith": "one scanner, one specimen every 3 s (demo.DEMO_OTOLITH_EVERY_S)",
        "lanes_on": "otolith in its own lane (the default); lanes_off: tasks.otolith.lane=main",
        "runs": runs,
        "machine": f"{platform.machine()} cpus={len(os.sched_getaffinity(0))}",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo_lanes.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
