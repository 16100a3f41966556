"""`seawatch demo`: the whole data path on embedded defaults, with nothing to set up.

Starts the embedded broker, publishes a simulated cruise (:data:`DEMO_PLAN`: six stations
over 26 hours of capture time, with their own plankton communities, a Noctiluca bloom, an
imager that falls silent, otoliths and a fish tank; ROI and full frames and a few broken
messages) as fast as the daemon takes it, runs the daemon on it with live progress, and
ends with a summary read back from the store the records were written to, and the alerts.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seawatch.alert_settings import InstrumentSilentRule
from seawatch.alerts.model import Alert
from seawatch.config import Settings
from seawatch.contracts.frames import BUILTIN_TASKS
from seawatch.daemon import build_daemon
from seawatch.demo_summary import DemoResult, summary_table
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.lanes import plan_lanes
from seawatch.models.cruise_plan import DEMO_PLAN, HOUR_NS, CruisePlan
from seawatch.models.synthetic_stream import cruise_stream
from seawatch.stats import PipelineStats


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


DEMO_FISH_SHARE = 0.08  # share of fish frames in the demo stream
# Otolith specimens come as a fish lab scans them: one every DEMO_OTOLITH_EVERY_S per
# scanner (the feed holds a specimen back until its scanner's next slot), about as many as
# the demo's half minute or so holds (2000 frames: 12 specimens).
DEMO_OTOLITH_SHARE = 0.006
DEMO_OTOLITH_EVERY_S = 3.0
# ``instrument_silent`` measures *wall* time since an instrument's last frame was stored
# (300 s by default), and the demo replays a 26-hour cruise in about half a minute, so the
# rule could never fire in it. The demo waits this long instead: well over the longest wall
# gap between two frames of a working instrument (measured: up to 3 s on 2 idle cores,
# 6.5 s on overloaded ones), well under the time the daemon goes on working after the
# silent imager's last frame (the last four fifths of the stream: 25-40 s on 2 cores).
DEMO_SILENT_S = 10.0
# The feed keeps at most this many polls' worth of messages ahead. The daemon runs flat out,
# so every message waits behind that backlog: latency = lead / throughput. One poll's worth
# keeps it as busy as two did (48 frames/s on 2 cores either way) at half the latency
# (p50 / p99 1.0 / 2.0 s instead of 2.2 / 4.3 s, measured 2026-12-06).
DEMO_FEED_LEAD = 0.5
# The feed starts once the daemon's consumer has joined its group (models loaded, partitions
# assigned: about 5 s on Tansu), as instruments would be switched on after the daemon; else
# the first frames' latency would be the start-up's. Started anyway after this long.
DEMO_READY_TIMEOUT_S = 60.0


def demo_settings(settings: Settings) -> Settings:
    """``settings`` with every ``instrument_silent`` rule waiting :data:`DEMO_SILENT_S` at
    most (see there why)."""
    alerts = settings.alerts
    rules = [
        r.model_copy(update={"silent_s": min(r.silent_s, DEMO_SILENT_S)})
        if isinstance(r, InstrumentSilentRule)
        else r
        for r in alerts.rules
    ]
    return settings.model_copy(update={"alerts": alerts.model_copy(update={"rules": rules})})


def cruise_start_ns(plan: CruisePlan, now_ns: int) -> int:
    """The whole hour at which ``plan`` starts so that it ends just before ``now_ns``."""
    return (now_ns - round(plan.hours * HOUR_NS)) // HOUR_NS * HOUR_NS


def describe_plan(plan: CruisePlan) -> str:
    """One line on the simulated cruise: its stations, the bloom and the silent instrument."""
    text = (
        f"cruise [cyan]{plan.cruise}[/]: {len(plan.stations)} stations over {plan.hours:g} h "
        "of capture time, published as fast as the daemon takes them"
    )
    if plan.bloom is not None:
        b = plan.bloom
        text += f"; {b.taxon} blooms at {b.station} (hours {b.start_h:g}-{b.end_h:g})"
    if plan.silent is not None:
        text += f"; {plan.silent.instrument} falls silent at hour {plan.silent.after_h:g}"
    return text


def topics_by_task(topics: list[str]) -> dict[str, str]:
    """``task -> topic`` for the topics named ``<prefix>.<task>`` (``frames.otolith``...)."""
    return {t.rsplit(".", 1)[-1]: t for t in topics if t.rsplit(".", 1)[-1] in BUILTIN_TASKS}


def run_demo(
    settings: Settings, *, frames: int, broken_share: float, seed: int, console: Console
) -> DemoResult:
    """Run the demo end to end and return its measurements.

    Each demo starts clean: its store, its crops, its fish gallery working copy and its
    evidence files are removed first (the CLI points the demo at its own files, never the daemon's).
    """
    settings = demo_settings(settings)
    local = settings.storage.local
    store = local.path
    for path in (store, local.crops_path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    local.fish_gallery_path.unlink(missing_ok=True)
    shutil.rmtree(local.evidence_root, ignore_errors=True)
    with EmbeddedBroker() as broker:
        console.print(f"embedded broker (Tansu) on [cyan]{broker.bootstrap_servers}[/]")
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        settings = settings.model_copy(update={"kafka": kafka})
        ensure_topics(broker.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
        served = set(settings.enabled_tasks())
        console.print(describe_plan(DEMO_PLAN))
        silent = [r for r in settings.alerts.rules if isinstance(r, InstrumentSilentRule)]
        if settings.alerts.enabled and silent:
            console.print(
                f"[dim]instrument-silent measures wall time; the demo plays {DEMO_PLAN.hours:g} h "
                f"in well under a minute, so it waits {silent[0].silent_s:g} s of wall time[/]"
            )
        messages = cruise_stream(
            frames,
            plan=DEMO_PLAN,
            seed=seed,
            broken_share=broken_share,
            start_ns=cruise_start_ns(DEMO_PLAN, time.time_ns()),
            otolith_share=DEMO_OTOLITH_SHARE if "otolith" in served else 0.0,
            fish_share=DEMO_FISH_SHARE if "fish" in served else 0.0,
        )
        publisher = Publisher(broker.bootstrap_servers, kafka.max_message_bytes)
        stats = PipelineStats()
        lead = max(1, round(DEMO_FEED_LEAD * kafka.max_poll_records))
        routes = topics_by_task(kafka.topics)
        feed = _Feed(
            publisher,
            kafka.topics[0],
            messages,
            routes,
            lambda: stats.processed,
            lead,
            ready=threading.Event(),
            otolith_every_s=DEMO_OTOLITH_EVERY_S,
        )
        feed.start()
        try:
            result = _consume(settings, frames, feed, console, store, stats)
        finally:
            feed.stopped.set()
            feed.join()
            publisher.close()
        return result


class _Feed(threading.Thread):
    """Publishes the synthetic stream while the daemon consumes it, like a live instrument.

    It keeps at most ``lead`` messages ahead of ``handled()`` (the daemon's count): with a
    backlog, the consumer drains one partition (one instrument) at a time for many seconds,
    so the stream would reach the daemon out of capture order and, in wall time, every
    instrument would seem to fall silent now and then.
    """

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        messages,
        routes: dict,
        handled,
        lead: int,
        *,
        ready: threading.Event | None = None,
        otolith_every_s: float = 0.0,
    ) -> None:
        super().__init__(name="feed", daemon=True)
        self.otolith_every_s = otolith_every_s
        self.publisher, self.topic, self.messages = publisher, topic, messages
        self.routes = routes
        self.handled, self.lead = handled, lead
        self.sent = 0
        self.broken = 0
        self.seconds = 0.0
        self.error: BaseException | None = None
        self.stopped = threading.Event()  # set when the daemon stops: wait no longer
        self.ready = ready or threading.Event()  # set when the daemon consumes: start
        if ready is None:
            self.ready.set()

    def _paced(self):
        """The messages, each once the daemon is less than ``lead`` behind, and each otolith
        specimen at its scanner's next slot (:data:`DEMO_OTOLITH_EVERY_S`); none once the
        demo has stopped."""
        held: dict[bytes, deque] = {}  # per scanner, its specimens waiting for their slot
        slots = _ScannerSlots(self.otolith_every_s)
        for message in self.messages:
            if _is_otolith(message):
                held.setdefault(message.key, deque()).append(message)
            else:
                if not self._wait_for_room():
                    return
                yield self._count(message)
            yield from (self._count(m) for m in slots.due(held))
        while any(held.values()):  # the stream is out: the last specimens at their slots
            if self.stopped.wait(0.05):
                return
            yield from (self._count(m) for m in slots.due(held))

    def _wait_for_room(self) -> bool:
        """Wait until the daemon is less than ``lead`` behind; False once the demo stopped."""
        while self.sent - self.handled() >= self.lead:
            if self.stopped.wait(0.005):
                return False
        return not self.stopped.is_set()

    def _count(self, message):
        self.broken += message.broken is not None
        self.sent += 1
        return message

    def run(self) -> None:
        while not self.ready.wait(0.05):
            if self.stopped.is_set():
                return
        started = time.perf_counter()
        try:
            publish_messages(
                self.publisher,
                self.topic,
                self._paced(),
                topics_by_task=self.routes,
            )
        except BaseException as exc:  # reported by the demo
            self.error = exc
        self.seconds = time.perf_counter() - started


def _is_otolith(message) -> bool:
    return message.meta is not None and message.meta.task == "otolith"


class _ScannerSlots:
    """Wall-clock slots per scanner: one specimen every ``every_s`` from each."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next: dict[bytes, float] = {}

    def due(self, held: dict[bytes, deque]) -> list:
        """The first held specimen of each scanner whose slot has come (their next slots
        taken)."""
        now = time.monotonic()
        out = []
        for scanner, queue in held.items():
            if queue and now >= self._next.get(scanner, 0.0):
                self._next[scanner] = now + self.every_s
                out.append(queue.popleft())
        return out


def _consume(
    settings: Settings,
    frames: int,
    feed: _Feed,
    console: Console,
    store: Path,
    stats: PipelineStats,
) -> DemoResult:
    """Run a daemon per lane (:func:`seawatch.lanes.plan_lanes`), each on its own thread in
    this process (``seawatch run`` gives each its own process), until ``frames`` messages
    are handled; the stats are shared (they take a lock)."""
    begun = time.perf_counter()
    lanes = plan_lanes(settings)
    daemons = [
        build_daemon(settings, stats, lane=lane if len(lanes) > 1 else None) for lane in lanes
    ]
    alerts: list[Alert] = []
    for daemon in daemons:
        _record_alerts(daemon.pipeline.alert_outputs, alerts)
    failure: list[BaseException] = []

    def work(daemon) -> None:
        try:
            daemon.run(lambda s: s.processed >= frames)
        except BaseException as exc:  # surfaced in the main thread below
            failure.append(exc)
            for other in daemons:
                other.stop()

    started = time.perf_counter()
    ready_s: float | None = None
    threads = [
        threading.Thread(target=work, args=(d,), name=f"lane-{lane.name}")
        for d, lane in zip(daemons, lanes, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        with _progress(console) as progress:
            published = progress.add_task("publish", total=frames, info="")
            task = progress.add_task("process", total=frames, info="")
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(0.2 / len(threads))
                waited = time.perf_counter() - begun
                assigned = all(d.pipeline.source.assigned() for d in daemons)
                if ready_s is None and (assigned or waited > DEMO_READY_TIMEOUT_S):
                    ready_s = waited
                    feed.ready.set()
                progress.update(published, completed=feed.sent, info=f"{feed.broken} broken")
                if feed.error is not None:
                    for daemon in daemons:
                        daemon.stop()
                rate = stats.frames / max(1e-9, time.perf_counter() - started)
                info = f"{stats.objects} objects, {stats.dead_letters} to DLQ, {rate:.0f} frames/s"
                progress.update(task, completed=stats.processed, info=info)
    except KeyboardInterrupt:
        for daemon in daemons:
            daemon.stop()
        for thread in threads:
            thread.join()
    finally:
        for daemon in daemons:
            daemon.close()
    if failure:
        raise failure[0]
    if feed.error is not None:
        raise feed.error
    return DemoResult(
        frames, feed.broken, feed.seconds, stats, store, tuple(alerts), ready_s=ready_s
    )


def _record_alerts(outputs, emitted: list[Alert]) -> list[Alert]:
    """``emitted``, to which every alert ``outputs`` emits is added (for the summary)."""
    emit = outputs.emit

    def emit_and_record(batch, *, flush: bool = False) -> None:
        emitted.extend(batch)
        emit(batch, flush=flush)

    outputs.emit = emit_and_record
    return emitted


__all__ = ["DemoResult", "demo_settings", "describe_plan", "run_demo", "summary_table"]
