"""The end of `seawatch demo`: its measurements and the summary table read back from the store.

The table counts what the terminal no longer prints one by one: the alerts by rule and the
dead letters by what was wrong with them (each of them is in the demo's log file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from seawatch.alerts.model import Alert
from seawatch.models.cruise_plan import HOUR_NS
from seawatch.stats import PipelineStats
from seawatch.storage.local_store import open_readonly


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured and where it put the results (``log``: its log file)."""

    published: int
    broken: int
    feed_seconds: float
    stats: PipelineStats
    store: Path
    alerts: tuple[Alert, ...] = ()
    log: Path | None = None
    ready_s: float | None = None  # daemon start to its consumer's partitions (feed starts)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def summary_table(result: DemoResult) -> Table:
    """The end-of-demo table, with counts read back from the local store."""
    db = open_readonly(result.store)
    try:
        stored_frames, stored_objects, first_ns, last_ns, stations = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(n_objects), 0), MIN(captured_at_ns), "
            "MAX(captured_at_ns), COUNT(DISTINCT station) FROM frames"
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
        uids = [a.evidence.frame_uid for a in result.alerts if a.kind == "plankton_bloom"]
        marks = ",".join("?" * len(uids))
        where = db.execute(
            f"SELECT uid, station, captured_at_ns FROM frames WHERE uid IN ({marks})", uids
        ).fetchall()
    finally:
        db.close()
    stats = result.stats
    busy = stats.busy_seconds() or 1e-9  # nothing stored: no throughput to speak of
    table = Table(title="seawatch demo: summary", show_header=False, min_width=60)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("messages published", f"{result.published} ({result.broken} broken on purpose)")
    table.add_row("frames stored", str(stored_frames))
    if stored_frames:
        span_h = (last_ns - first_ns) / HOUR_NS
        table.add_row("  capture time", f"{span_h:.1f} h at {stations} stations")
    table.add_row("objects classified", str(stored_objects))
    for instrument, kind, count in per_instrument:
        table.add_row(f"  {instrument} ({kind})", str(count))
    table.add_row(
        "throughput", f"{stats.frames / busy:.0f} frames/s, {stats.objects / busy:.0f} objects/s"
    )
    if result.ready_s is not None:
        table.add_row("  daemon start", f"{result.ready_s:.1f} s to load models and join its group")
    feed_rate = result.published / max(result.feed_seconds, 1e-9)
    table.add_row("  the feed", f"{feed_rate:.0f} frames/s rendered and published, kept just ahead")
    _latency_rows(table, stats)
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
    at = {uid: f"{station}, hour {(t - first_ns) / HOUR_NS:.1f}" for uid, station, t in where}
    _alert_rows(table, result.alerts, at)
    _dead_letter_rows(table, stats)
    table.add_section()
    table.add_row("results stored in", str(result.store))
    if result.log is not None:
        table.add_row("log (each alert, dead letter)", str(result.log))
    return table


def _latency_rows(table: Table, stats: PipelineStats) -> None:
    """End-to-end latency overall and per task, and the time in the daemon."""
    p50, p99 = stats.latency_percentiles(50, 99)
    s50, s99 = stats.service_percentiles(50, 99)
    table.add_row(
        "latency p50 / p99", f"{_ms(p50)} / {_ms(p99)} ms (published -> stored + committed)"
    )
    for task, (t50, t99) in stats.task_latency_percentiles(50, 99).items():
        table.add_row(f"  {task}", f"{_ms(t50)} / {_ms(t99)} ms")
    table.add_row("  in the daemon", f"{_ms(s50)} / {_ms(s99)} ms (polled -> stored + committed)")


def _dead_letter_rows(table: Table, stats: PipelineStats) -> None:
    """Dead letters, by stage and the header or property at fault."""
    table.add_section()
    table.add_row("dead letters", str(stats.dead_letters))
    for reason, count in sorted(stats.dead_letters_by_reason.items()):
        table.add_row(f"  {reason}", str(count))


def _alert_rows(table: Table, alerts: tuple[Alert, ...], at: dict[str, str]) -> None:
    """Alerts per rule, and the bloom and silent-instrument alerts one by one (``at``: where
    and when in the cruise, by frame uid)."""
    table.add_section()
    table.add_row("alerts", str(len(alerts)))
    rules: dict[str, int] = {}
    for alert in alerts:
        rules[alert.rule] = rules.get(alert.rule, 0) + 1
    for rule, count in sorted(rules.items()):
        table.add_row(f"  {rule}", str(count))
    for alert in alerts:
        if alert.kind in ("plankton_bloom", "instrument_silent"):
            where = at.get(alert.evidence.frame_uid or "")
            table.add_row(f"  {alert.rule}", alert.message + (f" ({where})" if where else ""))


__all__ = ["DemoResult", "summary_table"]
