"""End-to-end latency against offered load, and the maximum it is measured against.

``seawatch run`` as a child process on the real Tansu broker, a paced producer beside it on
the same machine (see ``offered_load.py``). The maximum is the rate the daemon stores while
more is offered than it can take; then each share of it in ``--loads`` is offered for
``--seconds`` and the latency (producer send -> durable in the store) of the frames sent in
its last two thirds is taken, p50 and p99. Writes ``benchmarks/results/latency.json`` and
``latency.png``.

    python benchmarks/latency.py [--loads 0.2 0.4 0.6 0.8 1.0] [--seconds 45] [--env K=V ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from offered_load import DaemonUnderLoad, backlog_maximum, latency_windows, sustained_maximum
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.models.synthetic_stream import synthetic_stream

RESULTS = Path(__file__).parent / "results"


def at_load(daemon: DaemonUnderLoad, rate: float, seconds: float) -> dict:
    """Offer ``rate`` for ``seconds``; latency of the frames sent after the first third."""
    settle_ns = time.time_ns() + int(seconds / 3 * 1e9)
    daemon.offer(rate, seconds)
    daemon.drain(120)
    (window,) = latency_windows(daemon.store, settle_ns, window_s=10 * seconds) or [{}]
    return {
        "offered_frames_per_s": round(rate, 1),
        **{k: window.get(k) for k in ("frames", "p50_ms", "p99_ms")},
    }


def plot(rows: list[dict], maximum: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    x = [100 * r["offered_frames_per_s"] / maximum for r in rows]
    ax.plot(x, [r["p99_ms"] for r in rows], "o-", label="p99")
    ax.plot(x, [r["p50_ms"] for r in rows], "o-", label="p50")
    ax.axhline(500, color="grey", linestyle=":", label="500 ms")
    ax.set(
        xlabel=f"offered load (% of {maximum:.0f} frames/s)",
        ylabel="send -> stored (ms)",
        yscale="log",
        title="End-to-end latency against load",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0])
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--calibrate", type=int, default=1500)
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--env", nargs="*", default=[], help="SEAWATCH_* settings, K=V")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    console = Console()
    pool = list(synthetic_stream(args.pool, seed=0, start_ns=0))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        backlog_max = backlog_maximum(broker, pool, args.calibrate, Path(tmp))
        daemon = DaemonUnderLoad(broker, pool, Path(tmp), env)
        try:
            maximum = sustained_maximum(daemon, backlog_max)
            daemon.drain(300)
            console.print(f"maximum {maximum:.1f} frames/s (backlog {backlog_max:.1f})")
            rows = []
            for load in args.loads:
                rows.append({"load": load, **at_load(daemon, load * maximum, args.seconds)})
                console.print(rows[-1])
        finally:
            ended = daemon.stop()
    table = Table("load", "offered frames/s", "p50 ms", "p99 ms", title="latency against load")
    for r in rows:
        table.add_row(
            f"{r['load']:.0%}",
            f"{r['offered_frames_per_s']:.0f}",
            str(r["p50_ms"]),
            str(r["p99_ms"]),
        )
    console.print(table)
    at80 = next((r for r in rows if abs(r["load"] - 0.8) < 1e-9), None)
    result = {
        "maximum_frames_per_s": round(maximum, 1),
        "backlog_maximum_frames_per_s": round(backlog_max, 1),
        "seconds_per_load": args.seconds,
        "settings": env,
        "rows": rows,
        "p99_at_80_percent_ms": at80 and at80["p99_ms"],
        **ended,
        "machine": f"{platform.machine()} cpus={len(os.sched_getaffinity(0))}",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, maximum, args.out / "latency.png")
    if at80:
        verdict = "meets" if at80["p99_ms"] < 500 else "misses"
        console.print(f"p99 at 80 %: {at80['p99_ms']} ms ({verdict} the 500 ms target)")


if __name__ == "__main__":
    main()
