"""Soak: ten minutes at 80 % of the measured maximum throughput.

1. Maximum, as the daemon meets it here: ``seawatch run`` as a child process (the shape it
   is deployed in) on the real Tansu broker, with the paced producer on the same two cores.
   The producer first offers more than the daemon can take (the rate at which the daemon,
   in this process, drains a pre-published backlog); the rate the daemon stores over the
   last 40 s of that minute is the maximum. The backlog is then drained.
2. Soak: the producer offers ``--load`` x maximum for ``--minutes``. Frames are rendered
   once (a pool of synthetic ROI and full frames) and sent again with fresh capture times,
   so every message is a new frame.
3. Every 2 s the daemon's RSS (from /proc); per minute the frames stored and their
   end-to-end latency (producer send -> durable in the store) p50/p99.

Verdict: RSS growth after warm-up under 10 %, no errors (DLQ, ERROR log lines,
tracebacks), every offered frame stored, p99 stable (last full minute within 2x of the
first after warm-up). Writes ``benchmarks/results/soak.json`` and ``soak.png``.

    python benchmarks/soak.py [--minutes 10] [--load 0.8] [--warmup-s 120]
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

from rich.console import Console

from offered_load import DaemonUnderLoad, backlog_maximum, latency_windows, sustained_maximum
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.models.synthetic_stream import synthetic_stream

RESULTS = Path(__file__).parent / "results"


def verdict(run: dict, warmup_s: float) -> dict:
    """The soak's figures and whether each meets the issue's bar."""
    after = [s for s in run["samples"] if s["t_s"] >= warmup_s]
    rss_start, rss_end = after[0]["rss_mib"], after[-1]["rss_mib"]
    growth = (rss_end - rss_start) / rss_start
    full = [m for m in run["minutes"] if m["minute"] * 60 >= warmup_s][:-1] or run["minutes"]
    p99_first, p99_last = full[0]["p99_ms"], full[-1]["p99_ms"]
    return {
        "rss_after_warmup_mib": rss_start,
        "rss_end_mib": rss_end,
        "rss_growth": round(growth, 4),
        "p99_first_minute_ms": p99_first,
        "p99_last_minute_ms": p99_last,
        "p99_max_minute_ms": max(m["p99_ms"] for m in full),
        "lost": run["sent"] - run["stored"],
        "ok_rss": growth < 0.10,
        "ok_errors": run["error_lines"] == 0
        and run["tracebacks"] == 0
        and run["dead_letters"] == 0
        and run["exit_code"] == 0,
        "ok_lost": run["sent"] == run["stored"],
        "ok_p99_stable": p99_last <= 2 * p99_first,
    }


def plot(run: dict, rate: float, warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    t = [s["t_s"] / 60 for s in run["samples"]]
    ax1.plot(t, [s["rss_mib"] for s in run["samples"]], color="tab:blue")
    ax1.axvline(warmup_s / 60, color="grey", linestyle=":", label="end of warm-up")
    ax1.set(xlabel="minutes", ylabel="daemon RSS (MiB)", title="Memory")
    ax1.legend(loc="lower right")
    minutes = run["minutes"]
    ax2.plot(
        [m["minute"] + 0.5 for m in minutes], [m["p99_ms"] for m in minutes], "o-", label="p99"
    )
    ax2.plot(
        [m["minute"] + 0.5 for m in minutes], [m["p50_ms"] for m in minutes], "o-", label="p50"
    )
    ax2.set(
        xlabel="minutes",
        ylabel="send -> stored (ms)",
        title=f"Latency at {rate:.0f} frames/s offered",
    )
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8, help="share of the measured maximum")
    parser.add_argument("--warmup-s", type=float, default=120.0)
    parser.add_argument("--calibrate", type=int, default=1500, help="backlog frames for the max")
    parser.add_argument("--pool", type=int, default=400, help="distinct frames rendered")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    pool = list(synthetic_stream(args.pool, seed=args.seed, start_ns=0))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        backlog_max = backlog_maximum(broker, pool, args.calibrate, Path(tmp))
        daemon = DaemonUnderLoad(broker, pool, Path(tmp))
        try:
            maximum = sustained_maximum(daemon, backlog_max)
            daemon.drain(300)
            rate = args.load * maximum
            console.print(
                f"backlog maximum {backlog_max:.1f} frames/s, sustained with the producer "
                f"beside it {maximum:.1f}; soaking at {rate:.1f} frames/s for {args.minutes:g} min"
            )
            sent_before, start_ns = daemon.sent, time.time_ns()

            def show(sample: dict) -> None:
                if int(sample["t_s"]) % 60 < 2:
                    console.print(
                        f"{sample['t_s']:6.0f} s  sent {sample['sent'] - sent_before}  "
                        f"stored {sample['stored'] - sent_before}  RSS {sample['rss_mib']} MiB"
                    )

            samples = daemon.offer(rate, args.minutes * 60, show)
            stored = daemon.drain(60)
        finally:
            ended = daemon.stop()
        run = {
            "samples": samples,
            "sent": daemon.sent - sent_before,
            "stored": stored - sent_before,
            "minutes": [
                {"minute": w.pop("window"), **w} for w in latency_windows(daemon.store, start_ns)
            ],
            **ended,
        }
    result = {
        "backlog_maximum_frames_per_s": round(backlog_max, 1),
        "maximum_frames_per_s": round(maximum, 1),
        "offered_frames_per_s": round(rate, 1),
        "load": args.load,
        "minutes": args.minutes,
        "warmup_s": args.warmup_s,
        **verdict(run, args.warmup_s),
        **{
            k: run[k]
            for k in (
                "sent",
                "stored",
                "error_lines",
                "tracebacks",
                "dead_letters",
                "exit_code",
                "minutes",
            )
        },
        "machine": f"{platform.machine()} cpus={_cpus()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(run, rate, args.warmup_s, args.out / "soak.png")
    for key in (
        "sent",
        "stored",
        "lost",
        "rss_after_warmup_mib",
        "rss_end_mib",
        "rss_growth",
        "p99_first_minute_ms",
        "p99_last_minute_ms",
        "p99_max_minute_ms",
    ):
        console.print(f"{key:>22}: {result[key]}")
    ok = all(result[k] for k in ("ok_rss", "ok_errors", "ok_lost", "ok_p99_stable"))
    console.print(
        "[green]PASS[/]" if ok else "[red]FAIL[/]",
        result["ok_rss"],
        result["ok_errors"],
        result["ok_lost"],
        result["ok_p99_stable"],
    )
    sys.exit(0 if ok else 1)


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
