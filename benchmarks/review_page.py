"""Review station page loads on a million-object store, with the daemon consuming beside it.

1. The store: :mod:`review_store` builds it once (1,000,000 objects, each with its own
   crop) under ``--data``; later runs reuse it (and delete what their daemon added).
2. ``seawatch review serve`` as a child process (uvicorn on 127.0.0.1), a viewer logged in
   through the login form.
3. A page load is what a browser does for the grid (:class:`review_client.Browser`):
   ``GET /objects`` for a cruise and a taxon, ``order=confidence``, a page 0-4 (the page
   carries its thumbnails inline as ``data:`` URIs), then any image the HTML names by URL
   (``/crops/...``, ``/thumbs/...``: none today) over 6 concurrent keep-alive
   connections; from the first byte asked to the last byte received. Only pages that
   their combination fills (200 thumbnails) are drawn, each once. Static assets (which a
   browser caches) are left out. Each page is loaded twice: the **first view**, with the
   store's and the crops' files dropped from the OS page cache at the start of the phase
   (the objects and crops of a page nobody looked at lately come from the disk), and
   right after it a **reload** (the same rows and crops, now cached by the OS; the client
   asks for every thumbnail again, as a browser without its cache would).
4. ``--loads`` pages with the daemon idle (not started), then as many while ``seawatch
   run`` (a child process, on the real Tansu broker) drains a backlog of the synthetic
   stream into the same store and crop store; the frames/s it stored meanwhile, and the
   cores each process used (this client, on the same two cores, included).

Prints p50/p95/max, writes ``review_page.json`` and ``review_page.png`` under ``--out``.

    python benchmarks/review_page.py [--data /tmp/seawatch-review-bench] [--loads 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from review_client import PAGE, Browser, cpu_s, evict, full_pages, page_path
from review_store import DEFAULT_DATA, build, store_paths
from seawatch.config import resolve_model_dir
from seawatch.ingest.broker import EmbeddedBroker, free_port, wait_for_port
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from seawatch.review.accounts import Accounts, Role

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
TARGET_P95_MS = 150.0
USER, PASSWORD = "bench", "bench-password-1"
TOPIC, DLQ, ALERTS = "bench.review.frames.plankton", "bench.review.dlq", "bench.review.alerts"
WARMUP = 5  # page loads before each phase, not counted


def env_for(data: Path, broker: EmbeddedBroker) -> dict[str, str]:
    store, _ = store_paths(data)
    return {
        **os.environ,
        "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SEAWATCH_KAFKA__TOPICS": json.dumps([TOPIC]),
        "SEAWATCH_KAFKA__DLQ_TOPIC": DLQ,
        "SEAWATCH_KAFKA__GROUP_ID": "bench-review",
        "SEAWATCH_ALERTS__TOPIC": ALERTS,
        "SEAWATCH_TASKS__PLANKTON__MODEL_DIR": str(resolve_model_dir(Path("models/plankton"))),
        "SEAWATCH_STORAGE__LOCAL__PATH": str(store),
        # the benchmark's crops (~9 GB) are all kept: the 2 GiB default would prune 3/4
        "SEAWATCH_STORAGE__LOCAL__CROPS__MAX_BYTES": str(64 * 1024**3),
        "SEAWATCH_HTTP__PORT": str(free_port()),
    }


class Child:
    """A ``python -m seawatch ...`` child process with its log in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, nice: int = 0) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        lower = (lambda: os.nice(nice)) if nice else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "seawatch", *args], env=env, cwd=ROOT,
            stdout=self._log, stderr=self._log, preexec_fn=lower,
        )  # fmt: skip

    def wait_for(self, text: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} in {self.log_path}: {self.log_path.read_text()}")
            time.sleep(0.2)

    def stop(self) -> dict:
        self.process.terminate()
        code = self.process.wait(60)
        self._log.close()
        text = self.log_path.read_text(errors="replace")
        errors = sum(" level=ERROR " in line for line in text.splitlines())
        return {"exit_code": code, "tracebacks": text.count("Traceback"), "error_lines": errors}


def publish_backlog(broker: EmbeddedBroker, n: int, pool: int, start_ns: int) -> None:
    """``n`` frames of the synthetic stream: ``pool`` rendered, sent again with new times."""
    rendered = list(synthetic_stream(pool, seed=7, start_ns=0))
    messages = (
        dataclasses.replace(
            m, meta=dataclasses.replace(m.meta, captured_at_ns=start_ns + i * 1_000_000)
        )
        for i, m in ((i, rendered[i % pool]) for i in range(n))
    )
    ensure_topics(broker.bootstrap_servers, [TOPIC, DLQ, ALERTS], 4)
    publisher = Publisher(broker.bootstrap_servers)
    try:
        publish_messages(publisher, TOPIC, messages)
    finally:
        publisher.close()


def stored_since(store: Path, start_ns: int) -> int:
    """Frames of the backlog in the store (by the capture-time index)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT COUNT(*) FROM frames WHERE captured_at_ns >= ?", (start_ns,)
        ).fetchone()[0]
    finally:
        db.close()


def forget_backlog(data: Path, start_ns: int) -> int:
    """Delete what the daemon stored (frames, their objects, new crops) so that the next
    run finds the store as built; the frames deleted."""
    store_path, crops_path = store_paths(data)
    store = sqlite3.connect(store_path, timeout=30, isolation_level=None)
    store.execute("PRAGMA foreign_keys=ON")
    gone = store.execute("DELETE FROM frames WHERE captured_at_ns >= ?", (start_ns,)).rowcount
    store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    crops = sqlite3.connect(crops_path, timeout=30, isolation_level=None)
    crops.execute("DELETE FROM crops WHERE stored_at_ns >= ?", (start_ns,))
    crops.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    crops.close()
    return gone


def measure(browser: Browser, pages: list, pids: dict[str, int], files: list[Path]) -> dict:
    """First view and reload of each page (after the files left the page cache and a
    warm-up); the loads and the cores each process used meanwhile."""
    for path in files:
        evict(path)
    for page in pages[:WARMUP]:
        browser.load(page_path(*page))
    pids = {"client (this)": os.getpid(), **pids}
    cpu = {name: cpu_s(pid) for name, pid in pids.items()} | {"machine": cpu_s()}
    started = time.monotonic()
    first, reload = [], []
    for page in pages[WARMUP:]:
        first.append(browser.load(page_path(*page)))
        reload.append(browser.load(page_path(*page)))
    wall = time.monotonic() - started
    used = {name: (cpu_s(pid) - cpu[name]) / wall for name, pid in pids.items()}
    used["everything else"] = (cpu_s() - cpu["machine"]) / wall - sum(used.values())
    return {
        "first_view": figures(first),
        "reload": figures(reload),
        "wall_s": round(wall, 1),
        "cores_used": {k: round(v, 2) for k, v in used.items()},
        "loadavg_1m": os.getloadavg()[0],
    }


def figures(loads: list[dict]) -> dict:
    ms = np.array([x["ms"] for x in loads])
    html = np.array([x["html_ms"] for x in loads])
    return {
        "loads": len(loads),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
        "html_p50_ms": round(float(np.percentile(html, 50)), 1),
        "html_p95_ms": round(float(np.percentile(html, 95)), 1),
        "thumbnails_per_load": sorted({x["thumbs"] for x in loads}),
        "mean_kb_per_load": round(float(np.mean([x["bytes"] for x in loads])) / 1024, 1),
        "all_ms": [round(float(v), 2) for v in ms],
        "all_html_ms": [round(float(v), 2) for v in html],
        "all_thumbs_ms": [round(float(v), 2) for v in ms - html],
    }


def query_plans(store: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    page = ("SELECT * FROM objects o WHERE o.cruise = ? AND o.label = ? "
            "ORDER BY o.confidence ASC, o.frame_uid, o.idx LIMIT 200 OFFSET 800")  # fmt: skip
    plans = {"page": [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {page}", ("a", "b"))]}
    db.close()
    return plans


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    fps = result["daemon_frames_per_s"]
    for phase, name in (("idle", "daemon idle"), ("busy", f"daemon storing {fps:.0f} frames/s")):
        for kind, style in (("first_view", "-"), ("reload", "--")):
            ms = np.sort(result[phase][kind]["all_ms"])
            label = f"{name}, {kind.replace('_', ' ')}"
            ax1.step(ms, np.arange(1, len(ms) + 1) / len(ms), style, where="post", label=label)
    ax1.axvline(TARGET_P95_MS, color="grey", linestyle=":", label="target p95")
    ax1.axhline(0.95, color="grey", linewidth=0.5)
    ax1.set(xlabel=f"page load, HTML + {PAGE} thumbnails (ms)", ylabel="share of loads",
            title=f"{result['store']['objects']:,} objects, 2 cores")  # fmt: skip
    ax1.legend(loc="lower right", fontsize=8)
    busy = result["busy"]
    parts = [busy[k][p] for k in ("first_view", "reload") for p in ("all_html_ms", "all_thumbs_ms")]
    ax2.boxplot(
        parts, tick_labels=["HTML\nfirst", "thumbs\nfirst", "HTML\nreload", "thumbs\nreload"]
    )
    ax2.set(ylabel="ms", title="Where a load's time goes (daemon storing)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict, console: Console) -> None:
    """The figures as a table, and the verdict."""
    table = Table(title=f"review page loads (HTML + {PAGE} thumbnails), one viewer")
    columns = ("daemon", "load", "p50 ms", "p95 ms", "max ms", "HTML p95", "cores: server",
               "daemon", "client", "others")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    fps = result["daemon_frames_per_s"]
    for phase, name in (("idle", "idle"), ("busy", f"{fps:.0f} frames/s")):
        cores = result[phase]["cores_used"]
        for kind in ("first_view", "reload"):
            block = result[phase][kind]
            table.add_row(
                name if kind == "first_view" else "",
                kind.replace("_", " "),
                *(f"{block[k]:.0f}" for k in ("p50_ms", "p95_ms", "max_ms", "html_p95_ms")),
                *(f"{cores.get(k, 0):.2f}" if kind == "first_view" else ""
                  for k in ("review server", "daemon", "client (this)", "everything else")),
            )  # fmt: skip
    console.print(table)
    for kind, met in result["met"].items():
        verdict = "[green]met[/]" if met else "[red]not met[/]"
        console.print(f"target p95 < {TARGET_P95_MS:.0f} ms, daemon storing, {kind}: {verdict}")


def run(args, summary: dict, console: Console) -> dict:
    """Serve the store, measure idle, start the daemon, measure again; the result."""
    store, crops = store_paths(args.data)
    accounts = Accounts(store.with_name(f"{store.stem}-review.db"))
    accounts.add_user(USER, PASSWORD, Role.VIEWER)
    accounts.close()
    pages = full_pages(store)
    drawn = random.Random(args.seed).sample(pages, min(len(pages), 2 * (args.loads + WARMUP)))
    idle_pages, busy_pages = drawn[: len(drawn) // 2], drawn[len(drawn) // 2 :]
    with EmbeddedBroker() as broker:
        env, port = env_for(args.data, broker), free_port()
        start_ns = time.time_ns()
        console.print(f"publishing a backlog of {args.backlog:,} frames ...")
        publish_backlog(broker, args.backlog, 400, start_ns)
        server = Child(["review", "serve", "--port", str(port)], env, args.data / "serve.log")
        daemon = None
        try:
            wait_for_port("127.0.0.1", port, 60)
            browser = Browser(port, USER, PASSWORD)
            pids = {"review server": server.process.pid, "broker": broker.pid}
            idle = measure(browser, idle_pages, pids, [store, crops])
            console.print(f"daemon idle: first view p95 {idle['first_view']['p95_ms']} ms, "
                          f"reload {idle['reload']['p95_ms']} ms; starting the daemon")  # fmt: skip
            daemon = Child(["run"], env, args.data / "daemon.log", args.daemon_nice)
            daemon.wait_for("daemon_ready")
            while stored_since(store, start_ns) < 500:
                time.sleep(0.2)
            before, t0 = stored_since(store, start_ns), time.monotonic()
            pids["daemon"] = daemon.process.pid
            busy = measure(browser, busy_pages, pids, [store, crops])
            after, t1 = stored_since(store, start_ns), time.monotonic()
            browser.close()
        finally:
            daemon_end = daemon.stop() if daemon else {}
            server_end = server.stop()
            forget_backlog(args.data, start_ns)
    return {
        "target_p95_ms": TARGET_P95_MS,
        "met": {k: busy[k]["p95_ms"] < TARGET_P95_MS for k in ("first_view", "reload")},
        "idle": idle,
        "busy": busy,
        "busy_over_idle_p95": {
            k: round(busy[k]["p95_ms"] / idle[k]["p95_ms"], 2) for k in ("first_view", "reload")
        },
        "daemon_frames_per_s": round((after - before) / (t1 - t0), 1),
        "daemon_backlog_left": args.backlog - after,
        "daemon": daemon_end,
        "server": server_end,
        "store": summary,
        "query_plans": query_plans(store),
        "machine": f"{platform.machine()} cpus={len(os.sched_getaffinity(0))}",
        "daemon_nice": args.daemon_nice,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=100, help="pages per phase")
    parser.add_argument("--backlog", type=int, default=40_000, help="frames for the daemon")
    parser.add_argument("--daemon-nice", type=int, default=0, help="the daemon's nice value")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console(width=120)
    summary = build(args.data, args.objects)
    console.print(f"store: {summary['objects']:,} objects, {summary['frames']:,} frames, "
                  f"built in {summary['build_seconds']:.0f} s")  # fmt: skip
    result = run(args, summary, console)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "review_page.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "review_page.png")
    report(result, console)


if __name__ == "__main__":
    main()
