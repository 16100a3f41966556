"""Live model swaps under load: N promotions during a plankton stream on the real broker.

Two runs on the same frames, each with a Tansu broker of its own and the frames published at
a fixed rate while the daemon consumes (so latency is the daemon's, not a backlog's):

- steady    the plankton task served from a model store, nothing promoted;
- swapping  the same, with ``--swaps`` promotions spread over the stream (releases of the
            committed model under other version numbers, cycled), each loaded, checked and
            swapped in by the daemon (``seawatch.model_swap``).

Checks and prints: frames lost (stored records short of the frames sent), records stored
twice (the pipeline's own count of stored records against the frames sent, so a replay
would show), swaps done and refused, every record's version among the promoted releases
and switching in promotion order, and per-frame latency (broker -> stored) p50/p99 of both
runs with their ratio. Writes benchmarks/results/model_swap.json.

    python benchmarks/model_swap.py [--frames 50000] [--swaps 20] [--rate 300]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from seawatch.config import load_settings, resolve_model_dir
from seawatch.contracts.card import CARD_FILE, load_card
from seawatch.daemon import build_daemon
from seawatch.inference.model_store import promote
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import FrameMessage
from seawatch.models.synthetic_stream import synthetic_stream

RESULTS = Path(__file__).parent / "results" / "model_swap.json"


def releases(tmp: Path, n: int) -> list[Path]:
    """``n`` artifacts: the committed plankton model under versions 0.3.0.post0..n-1."""
    source = resolve_model_dir(Path("models/plankton"))
    out = []
    for i in range(n):
        target = tmp / f"plankton-post{i}"
        shutil.copytree(source, target)
        card = json.loads((target / CARD_FILE).read_text())
        card["version"] = f"0.3.0.post{i}"
        card.pop("release", None)
        (target / CARD_FILE).write_text(json.dumps(card, indent=2))
        load_card(target)  # still a valid artifact
        out.append(target)
    return out


def feed(broker: str, topic: str, messages: list[FrameMessage], rate: float) -> threading.Thread:
    """Publish ``messages`` at ``rate`` frames/s in a thread, stamped when sent."""
    from seawatch.ingest.publish import publish_messages

    def run() -> None:
        publisher = Publisher(broker)
        started = time.perf_counter()
        try:
            for start in range(0, len(messages), 50):
                wait = started + start / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                publish_messages(publisher, topic, messages[start : start + 50])
        finally:
            publisher.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_once(args, messages, artifacts, tmp: Path, name: str, swaps: int) -> dict:
    """One run: a fresh broker and store, the daemon until every frame is handled."""
    store = tmp / f"store-{name}"
    first = promote(store, artifacts[0])
    with EmbeddedBroker() as broker:
        settings = load_settings(
            kafka__bootstrap_servers=broker.bootstrap_servers,
            kafka__topics=[f"swap.{name}.frames.plankton"],
            kafka__group_id=f"swap-{name}",
            kafka__max_poll_interval_ms=6000,
            kafka__session_timeout_ms=6000,
            kafka__heartbeat_interval_ms=500,
            tasks={
                "plankton": {"model_store": str(store)},
                "otolith": {"enabled": False},
                "fish": {"enabled": False},
            },
            inference__swap_check_s=0.2,
            storage__local__path=str(tmp / f"{name}.db"),
        )
        kafka = settings.kafka
        ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
        daemon = build_daemon(settings)
        every = len(messages) // (swaps + 1) if swaps else 0
        promoted = [first.release]

        def should_stop(stats) -> bool:
            due = every and len(promoted) <= swaps and stats.frames >= every * len(promoted)
            if due:  # from the loop's thread, as an operator's promote would land any time
                promoted.append(promote(store, artifacts[len(promoted) % len(artifacts)]).release)
            return stats.processed >= len(messages)

        publisher = feed(kafka.bootstrap_servers, kafka.topics[0], messages, args.rate)
        started = time.perf_counter()
        try:
            stats = daemon.run(should_stop)
            swapper = daemon.pipeline.models
            done, refused = list(swapper.swaps), list(swapper.refusals)
        finally:
            daemon.close()
        publisher.join()
        seconds = time.perf_counter() - started
    db = sqlite3.connect(settings.storage.local.path)
    rows = db.execute(
        'SELECT partition, "offset", model_version, latency_ms FROM frames '
        'ORDER BY partition, "offset"'
    ).fetchall()
    db.close()
    latency = np.array([r[3] for r in rows])
    order_ok = True
    for partition in {r[0] for r in rows}:
        seen = [r[2] for r in rows if r[0] == partition]
        changes = [seen[0]] + [v for a, v in itertools.pairwise(seen) if v != a]
        # each partition sees the releases in promotion order (a subsequence of it)
        it = iter(promoted)
        order_ok &= all(any(v == p for p in it) for v in changes)
    return {
        "frames_sent": len(messages),
        "records_stored": len(rows),
        "frames_lost": len(messages) - len(rows),
        "stored_twice": stats.frames - len(rows),
        "dead_letters": stats.dead_letters,
        "promotions": len(promoted) - 1,
        "swaps": len(done),
        "refused": [r["reason"] for r in refused],
        "versions_valid": {r[2] for r in rows} <= set(promoted),
        "versions_in_promotion_order": order_ok,
        "latency_p50_ms": round(float(np.percentile(latency, 50)), 1),
        "latency_p99_ms": round(float(np.percentile(latency, 99)), 1),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--rate", type=float, default=300.0, help="frames/s published")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="model-swap-"))
    try:
        console.print(f"rendering {args.frames} plankton ROI frames ...")
        messages = list(
            synthetic_stream(
                args.frames,
                seed=args.seed,
                start_ns=time.time_ns() - args.frames * 10**6,
                otolith_share=0.0,
                fish_share=0.0,
                broken_share=0.0,
                full_share=0.0,
            )
        )
        artifacts = releases(tmp, 4)
        steady = run_once(args, messages, artifacts, tmp, "steady", 0)
        console.print(f"steady:   {steady}")
        swapping = run_once(args, messages, artifacts, tmp, "swapping", args.swaps)
        console.print(f"swapping: {swapping}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = swapping["latency_p99_ms"] / max(steady["latency_p99_ms"], 1e-9)
    console.print(
        f"p99 latency with {swapping['swaps']} swaps / without: {ratio:.2f} "
        f"({swapping['latency_p99_ms']} / {steady['latency_p99_ms']} ms); lost "
        f"{swapping['frames_lost']}, stored twice {swapping['stored_twice']}"
    )
    record = {
        "command": f"python benchmarks/model_swap.py --frames {args.frames} --swaps "
        f"{args.swaps} --rate {args.rate}",
        "date": time.strftime("%Y-%m-%d"),
        "steady": steady,
        "swapping": swapping,
        "p99_ratio": round(ratio, 3),
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
