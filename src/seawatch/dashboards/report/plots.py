"""The report's figures (matplotlib, Agg), returned as self-contained inline SVG text.

Text is drawn as paths (no fonts needed to view), every figure gets its own id salt (several
SVGs share one HTML document), and every axis carries its unit.
"""

from __future__ import annotations

import io
import itertools
import re
from datetime import UTC, datetime

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from seawatch.dashboards.report.data import ReportData, percentile

MAX_SERIES = 8
_salt = itertools.count()
_MS, _S, _MIN, _H, _D = 10**6, 10**9, 60 * 10**9, 3600 * 10**9, 86400 * 10**9
_NICE_NS = (
    [k * _MS for k in (1, 2, 5, 10, 20, 50, 100, 200, 500)]
    + [k * _S for k in (1, 2, 5, 10, 15, 30)]
    + [k * _MIN for k in (1, 2, 5, 10, 15, 30)]
    + [k * _H for k in (1, 2, 3, 6, 12)]
    + [k * _D for k in (1, 2, 7, 14, 30)]
)
_UNITS = [(_D, "d"), (_H, "h"), (_MIN, "min"), (_S, "s")]


def bin_width_ns(span_ns: int, target: int = 60) -> int:
    """A round bin width giving at most ``target`` bins over ``span_ns``."""
    for width in _NICE_NS:
        if span_ns / width <= target:
            return width
    return _NICE_NS[-1]


def describe_ns(width_ns: int) -> str:
    """A bin width in words (``500 ms``, ``5 min``)."""
    for unit_ns, unit in _UNITS:
        if width_ns >= unit_ns:
            return f"{width_ns / unit_ns:g} {unit}"
    return f"{width_ns / 1e6:g} ms"


def time_axis(start_ns: int, span_ns: int) -> tuple[float, str]:
    """Divisor (ns per unit) and axis label for times relative to ``start_ns``."""
    divisor, unit = _MS, "ms"
    for unit_ns, name in _UNITS:
        if span_ns >= 3 * unit_ns:
            divisor, unit = unit_ns, name
            break
    stamp = datetime.fromtimestamp(start_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return divisor, f"Time since {stamp} ({unit})"


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": f"sw{next(_salt)}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # Scale with the page: keep the viewBox, let CSS set the size.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img"', text, count=1)


def _figure(width: float = 7.5, height: float = 3.4) -> tuple[Figure, Axes]:
    # Figure, not pyplot: no global state, no backend to select, safe in any thread.
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    ax.grid(True, alpha=0.3, linewidth=0.6)
    return fig, ax


def _top(taxa: list[str]) -> list[str]:
    return taxa[:MAX_SERIES]


def counts_over_time(data: ReportData) -> str | None:
    """Objects per taxon per time bin (the most common taxa)."""
    span = data.time_span()
    if span is None or not data.taxa:
        return None
    width = bin_width_ns(span[1] - span[0])
    bins = data.binned(width)
    divisor, label = time_axis(span[0], span[1] - span[0])
    fig, ax = _figure()
    xs = [(start - span[0]) / divisor for start in bins]
    for taxon in _top(list(data.taxon_totals())):
        ax.plot(xs, [b.counts.get(taxon, 0) for b in bins.values()], marker=".", label=taxon)
    ax.set_xlabel(label)
    ax.set_ylabel(f"Objects per {describe_ns(width)} (count)")
    ax.legend(fontsize=7, ncols=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


def concentration_over_time(data: ReportData) -> str | None:
    """Pooled concentration (ind./m³) per taxon per time bin; None without volumes."""
    span = data.time_span()
    if span is None or data.imaged_volume_m3() <= 0:
        return None
    width = bin_width_ns(span[1] - span[0])
    bins = data.binned(width)
    divisor, label = time_axis(span[0], span[1] - span[0])
    series = {
        taxon: [
            ((start - span[0]) / divisor, c)
            for start, b in bins.items()
            if (c := b.concentration(taxon))  # zero and missing: nothing on a log axis
        ]
        for taxon in _top(list(data.taxon_totals()))
    }
    if not any(series.values()):
        return None
    fig, ax = _figure()
    for taxon, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=taxon)
    ax.set_xlabel(label)
    ax.set_yscale("log")
    ax.set_ylabel("Concentration (ind./m³)")
    ax.legend(fontsize=7, ncols=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


def by_station(data: ReportData) -> str | None:
    """Grouped bars: concentration (ind./m³) per station for the most common taxa, or counts
    when no frame reports its volume."""
    stations = data.stations()
    taxa = _top(list(data.taxon_totals()))
    if not stations or not taxa:
        return None
    with_volume = data.imaged_volume_m3() > 0
    counts = data.station_counts()
    fig, ax = _figure(height=3.6)
    step = 0.8 / len(taxa)
    for i, taxon in enumerate(taxa):
        if with_volume:
            values = [data.concentrations(s).get(taxon, 0.0) for s in stations]
        else:
            values = [counts.get(s, {}).get(taxon, 0) for s in stations]
        xs = [k - 0.4 + step * (i + 0.5) for k in range(len(stations))]
        ax.bar(xs, values, width=step, label=taxon)
    ax.set_xticks(range(len(stations)), stations, rotation=30 if len(stations) > 8 else 0)
    ax.set_xlabel("Station")
    ax.set_ylabel("Concentration (ind./m³)" if with_volume else "Objects (count)")
    ax.legend(fontsize=7, ncols=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


def nbss(data: ReportData) -> str | None:
    """The normalised biomass size spectrum on log-log axes: all frames, and per station."""
    overall = data.nbss()
    if not overall:
        return None
    fig, ax = _figure(width=6.5, height=3.8)
    stations = data.stations()
    if 1 < len(stations) <= MAX_SERIES:
        for station in stations:
            points = data.nbss(station)
            ax.plot(
                [p.size_class.centre_um for p in points],
                [p.nbss_per_m3 for p in points],
                marker=".",
                linewidth=0.8,
                alpha=0.7,
                label=station,
            )
    ax.plot(
        [p.size_class.centre_um for p in overall],
        [p.nbss_per_m3 for p in overall],
        marker="o",
        color="black",
        linewidth=1.6,
        label="all frames",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ESD class centre (µm)")
    ax.set_ylabel("NBSS (mm³ m⁻³ mm⁻³ = m⁻³)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


def otolith_scores(data: ReportData) -> str | None:
    """Histogram of anomaly scores with the decision threshold."""
    if not data.otoliths:
        return None
    fig, ax = _figure(width=6.5, height=3.0)
    normal = [o.score for o in data.otoliths if not o.anomaly]
    flagged = [o.score for o in data.otoliths if o.anomaly]
    bins = min(40, max(5, len(data.otoliths) // 3))
    ax.hist(
        [normal, flagged],
        bins=bins,
        stacked=True,
        label=["normal", "flagged"],
        color=["#4c78a8", "#e45756"],
    )
    for threshold in sorted({o.threshold for o in data.otoliths}):
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("Anomaly score (model units; dashed: threshold)")
    ax.set_ylabel("Otoliths (count)")
    ax.legend(fontsize=7)
    return to_svg(fig)


def fish_sightings(data: ReportData, limit: int = 25) -> str | None:
    """Sightings per individual (the most seen), new enrolments marked."""
    seen = data.individuals()
    if not seen:
        return None
    names = list(seen)[:limit]
    new = {f.individual for f in data.fish if f.new_individual or f.provisional}
    fig, ax = _figure(height=3.2)
    colors = ["#f58518" if n in new else "#4c78a8" for n in names]
    ax.bar(range(len(names)), [seen[n] for n in names], color=colors)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("Individual (orange: enrolled during the cruise / provisional)")
    ax.set_ylabel("Sightings (count)")
    return to_svg(fig)


def latency_over_time(data: ReportData) -> str | None:
    """Median and 99th-percentile latency (ms) per time bin, per task."""
    span = data.time_span()
    if span is None or not data.frames:
        return None
    width = bin_width_ns(span[1] - span[0], target=40)
    divisor, label = time_axis(span[0], span[1] - span[0])
    fig, ax = _figure(height=3.0)
    for task in sorted({f.task for f in data.frames}):
        groups: dict[int, list[float]] = {}
        for f in data.frames:
            if f.task == task:
                groups.setdefault(f.time_ns // width * width, []).append(f.latency_ms)
        xs = [(k - span[0]) / divisor for k in sorted(groups)]
        values = [sorted(groups[k]) for k in sorted(groups)]
        line = ax.plot(xs, [percentile(v, 50) for v in values], label=f"{task} p50")[0]
        ax.plot(
            xs,
            [percentile(v, 99) for v in values],
            linestyle="--",
            color=line.get_color(),
            label=f"{task} p99",
        )
    ax.set_xlabel(label)
    ax.set_ylabel("Latency broker → stored (ms)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


def pipeline_throughput(data: ReportData) -> str | None:
    """The daemon's own ``pipeline`` points: frames/s and objects/s per worker."""
    if not data.pipeline:
        return None
    start = data.pipeline[0].time_ns
    span = data.pipeline[-1].time_ns - start
    divisor, label = time_axis(start, span)
    fig, ax = _figure(height=3.0)
    for worker in sorted({p.worker for p in data.pipeline}):
        rows = [p for p in data.pipeline if p.worker == worker and p.frames_per_s is not None]
        ax.plot(
            [(p.time_ns - start) / divisor for p in rows],
            [p.frames_per_s for p in rows],
            marker=".",
            label=f"{worker} frames",
        )
        rows = [p for p in data.pipeline if p.worker == worker and p.objects_per_s is not None]
        ax.plot(
            [(p.time_ns - start) / divisor for p in rows],
            [p.objects_per_s for p in rows],
            marker=".",
            linestyle="--",
            label=f"{worker} objects",
        )
    ax.set_xlabel(label)
    ax.set_ylabel("Throughput (per s)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


__all__ = [
    "bin_width_ns",
    "by_station",
    "concentration_over_time",
    "counts_over_time",
    "describe_ns",
    "fish_sightings",
    "latency_over_time",
    "nbss",
    "otolith_scores",
    "pipeline_throughput",
    "time_axis",
    "to_svg",
]
