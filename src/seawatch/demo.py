"""`seawatch demo`: the whole data path on embedded defaults, with nothing to set up.

Starts the embedded broker, publishes a synthetic multi-instrument stream (ROI and full
frames, a few broken messages), runs the daemon on it with live progress, and ends with a
summary read back from the store the records were written to.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from seawatch.config import Settings
from seawatch.contracts.frames import BUILTIN_TASKS
from seawatch.daemon import build_daemon
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from seawatch.stats import PipelineStats
from seawatch.storage.local_store import open_readonly


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured and where it put the results."""

    published: int
    broken: int
    feed_seconds: float
    stats: PipelineStats
    store: Path


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


DEMO_TASK_SHARE = 0.08  # share of otolith and of fish frames in the demo stream


def topics_by_task(topics: list[str]) -> dict[str, str]:
    """``task -> topic`` for the topics named ``<prefix>.<task>`` (``frames.otolith``...)."""
    return {t.rsplit(".", 1)[-1]: t for t in topics if t.rsplit(".", 1)[-1] in BUILTIN_TASKS}


def run_demo(
    settings: Settings, *, frames: int, broken_share: float, seed: int, console: Console
) -> DemoResult:
    """Run the demo end to end and return its measurements.

    Each demo starts clean: its store, its fish gallery working copy and its evidence files
    are removed first (the CLI points the demo at its own files, never the daemon's).
    """
    local = settings.storage.local
    store = local.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    local.fish_gallery_path.unlink(missing_ok=True)
    shutil.rmtree(local.evidence_root, ignore_errors=True)
    with EmbeddedBroker() as broker:
        console.print(f"embedded broker (Tansu) on [cyan]{broker.bootstrap_servers}[/]")
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        settings = settings.model_copy(update={"kafka": kafka})
        ensure_topics(broker.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
        served = set(settings.enabled_tasks())
        messages = synthetic_stream(
            frames,
            seed=seed,
            broken_share=broken_share,
            start_ns=time.time_ns() - frames * 10**6,
            otolith_share=DEMO_TASK_SHARE if "otolith" in served else 0.0,
            fish_share=DEMO_TASK_SHARE if "fish" in served else 0.0,
        )
        publisher = Publisher(broker.bootstrap_servers, kafka.max_message_bytes)
        feed = _Feed(publisher, kafka.topics[0], messages, topics_by_task(kafka.topics))
        feed.start()
        try:
            result = _consume(settings, frames, feed, console, store)
        finally:
            feed.join()
            publisher.close()
        return result


class _Feed(threading.Thread):
    """Publishes the synthetic stream while the daemon consumes it, like a live instrument."""

    def __init__(self, publisher: Publisher, topic: str, messages, routes: dict) -> None:
        super().__init__(name="feed", daemon=True)
        self.publisher, self.topic, self.messages = publisher, topic, messages
        self.routes = routes
        self.sent = 0
        self.broken = 0
        self.seconds = 0.0
        self.error: BaseException | None = None

    def _count(self, message):
        self.broken += message.broken is not None
        self.sent += 1
        return message

    def run(self) -> None:
        started = time.perf_counter()
        try:
            publish_messages(
                self.publisher,
                self.topic,
                (self._count(m) for m in self.messages),
                topics_by_task=self.routes,
            )
        except BaseException as exc:  # reported by the demo
            self.error = exc
        self.seconds = time.perf_counter() - started


def _consume(
    settings: Settings, frames: int, feed: _Feed, console: Console, store: Path
) -> DemoResult:
    stats = PipelineStats()
    daemon = build_daemon(settings, stats)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            daemon.run(lambda s: s.processed >= frames)
        except BaseException as exc:  # surfaced in the main thread below
            failure.append(exc)

    started = time.perf_counter()
    worker = threading.Thread(target=work, name="pipeline")
    worker.start()
    try:
        with _progress(console) as progress:
            published = progress.add_task("publish", total=frames, info="")
            task = progress.add_task("process", total=frames, info="")
            while worker.is_alive():
                worker.join(0.2)
                progress.update(published, completed=feed.sent, info=f"{feed.broken} broken")
                if feed.error is not None:
                    daemon.stop()
                rate = stats.frames / max(1e-9, time.perf_counter() - started)
                info = f"{stats.objects} objects, {stats.dead_letters} to DLQ, {rate:.0f} frames/s"
                progress.update(task, completed=stats.processed, info=info)
    except KeyboardInterrupt:
        daemon.stop()
        worker.join()
    finally:
        daemon.close()
    if failure:
        raise failure[0]
    if feed.error is not None:
        raise feed.error
    return DemoResult(frames, feed.broken, feed.seconds, stats, store)


def summary_table(result: DemoResult) -> Table:
    """The end-of-demo table, with counts read back from the local store."""
    db = open_readonly(result.store)
    try:
        stored_frames, stored_objects = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(n_objects), 0) FROM frames"
        ).fetchone()
        per_taxon = db.execute(
            "SELECT taxon, COUNT(*), AVG(esd_um) FROM objects GROUP BY taxon ORDER BY 2 DESC"
        ).fetchall()
        per_instrument = db.execute(
            "SELECT instrument, frame_kind, COUNT(*) FROM frames GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        otoliths = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(anomaly), 0), COUNT(thumbnail), AVG(threshold) "
            "FROM otolith"
        ).fetchone()
        fish = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT individual), COALESCE(SUM(new_individual), 0), "
            "AVG(similarity) FROM fish"
        ).fetchone()
    finally:
        db.close()
    stats = result.stats
    p50, p99 = stats.latency_percentiles(50, 99)
    s50, s99 = stats.service_percentiles(50, 99)
    busy = stats.busy_seconds()
    table = Table(title="seawatch demo: summary", show_header=False, min_width=60)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("messages published", f"{result.published} ({result.broken} broken on purpose)")
    table.add_row("frames stored", str(stored_frames))
    table.add_row("objects classified", str(stored_objects))
    table.add_row("dead letters", f"{stats.dead_letters} {dict(stats.dead_letters_by_stage)}")
    for instrument, kind, count in per_instrument:
        table.add_row(f"  {instrument} ({kind})", str(count))
    table.add_row(
        "throughput", f"{stats.frames / busy:.0f} frames/s, {stats.objects / busy:.0f} objects/s"
    )
    feed_rate = result.published / max(result.feed_seconds, 1e-9)
    table.add_row("  paced by the feed", f"{feed_rate:.0f} frames/s rendered and published live")
    table.add_row("latency p50 / p99", f"{p50:.0f} / {p99:.0f} ms (broker -> stored + committed)")
    table.add_row("  in the daemon", f"{s50:.0f} / {s99:.0f} ms (polled -> stored + committed)")
    table.add_section()
    for taxon, count, esd in per_taxon:
        size = f"  (mean ESD {esd:.0f} µm)" if esd is not None else ""
        table.add_row(f"  {taxon}", f"{count}{size}")
    table.add_section()
    if otoliths[0]:
        table.add_row(
            "otoliths scored",
            f"{otoliths[0]}: {otoliths[1]} flagged (score > {otoliths[3]:.3g}), "
            f"{otoliths[2]} with thumbnail + heat map",
        )
    if fish[0]:
        table.add_row(
            "fish sightings",
            f"{fish[0]}: {fish[1]} individuals, {fish[2]} enrolled as new (mean similarity "
            f"{fish[3]:.2f})",
        )
    table.add_section()
    table.add_row("results stored in", str(result.store))
    return table


__all__ = ["DemoResult", "run_demo", "summary_table"]
