"""The report's sections (plankton, stations, size spectrum, otoliths, fish, pipeline), each
an HTML fragment that says so when its part of the data is missing."""

from __future__ import annotations

from pathlib import Path

from seawatch.dashboards.report import plots
from seawatch.dashboards.report.data import ReportData
from seawatch.dashboards.report.markup import Column, esc, figure, fmt, image_uri, table, when
from seawatch.dashboards.report.rows import OtolithRow

GALLERY_LIMIT = 48  # flagged otoliths shown with images; the rest are listed


def plankton(data: ReportData) -> str:
    """The plankton section."""
    if not data.plankton_frames:
        return '<p class="note">No plankton frames in this selection.</p>'
    totals = data.taxon_totals()
    total = sum(totals.values()) or 1
    conc = data.concentrations()
    bv: dict[str, float] = {}
    for r in data.taxa:
        if r.biovolume_mm3 is not None:
            bv[r.taxon] = bv.get(r.taxon, 0.0) + r.biovolume_mm3
    rows = [
        {
            "key": t,
            "taxon": t,
            "count": n,
            "share": 100 * n / total,
            "concentration": conc.get(t),
            "biovolume": bv.get(t),
        }
        for t, n in totals.items()
    ]
    cols = [
        Column("taxon", "taxon", False),
        Column("count", "objects"),
        Column("share", "share (%)"),
        Column("concentration", "concentration (ind./m³)"),
        Column("biovolume", "biovolume (mm³)"),
    ]
    volume = data.imaged_volume_m3()
    note = (
        f"Imaged volume {fmt(volume * 1e3)} L in "
        f"{sum(f.volume_ml is not None for f in data.plankton_frames)} frames; "
        "concentration = objects / imaged volume, pooled over frames."
        if volume > 0
        else "No frame reports its imaged volume: concentrations cannot be computed."
    )
    return "".join(
        [
            f'<p class="note">{esc(note)}</p>',
            table("taxa", cols, rows),
            figure(
                plots.counts_over_time(data),
                "Objects per taxon over time (most common taxa).",
                "No objects to plot.",
            ),
            figure(
                plots.concentration_over_time(data),
                "Concentration per taxon over time, pooled per time bin "
                "(bins without the taxon are not drawn on the log axis).",
                "No volume metadata: no concentrations over time.",
            ),
        ]
    )


def stations(data: ReportData) -> str:
    """The stations section."""
    stations = data.stations()
    if not stations:
        return '<p class="note">No plankton frames, so no stations.</p>'
    counts = data.station_counts()
    rows = []
    for s in stations:
        frames = [f for f in data.plankton_frames if f.station == s]
        volume = data.imaged_volume_m3(s)
        conc = data.concentrations(s)
        rows.append(
            {
                "key": s,
                "station": s,
                "frames": len(frames),
                "volume": volume * 1e3 if volume > 0 else None,
                "objects": sum(counts.get(s, {}).values()),
                "concentration": sum(conc.values()) if conc else None,
            }
        )
    cols = [
        Column("station", "station", False),
        Column("frames", "frames"),
        Column("volume", "imaged volume (L)"),
        Column("objects", "objects"),
        Column("concentration", "all taxa (ind./m³)"),
    ]
    return table("stations", cols, rows) + figure(
        plots.by_station(data),
        "Per-station concentration of the most common taxa.",
        "Nothing to plot by station.",
    )


def spectrum(data: ReportData) -> str:
    """The spectrum section."""
    points = data.nbss()
    if not points:
        return (
            '<p class="note">No size spectrum: no plankton frame reports both its imaged '
            "volume and its pixel size.</p>"
        )
    volume = sum(r.volume_m3 for r in data.sizes)
    rows = [
        {
            "key": p.size_class.field,
            "class": p.size_class.label,
            "centre": p.size_class.centre_um,
            "biovolume": p.biovolume_mm3,
            "nbss": p.nbss_per_m3,
        }
        for p in points
    ]
    cols = [
        Column("class", "ESD class", False),
        Column("centre", "centre (µm)"),
        Column("biovolume", "biovolume (mm³)"),
        Column("nbss", "NBSS (m⁻³)"),
    ]
    note = (
        f"{len(data.sizes)} frames, {fmt(volume * 1e3)} L imaged. "
        "NBSS = Σ biovolume / Σ imaged volume / class biovolume width."
    )
    return "".join(
        [
            f'<p class="note">{esc(note)}</p>',
            figure(plots.nbss(data), "Normalised biomass size spectrum (log-log).", ""),
            table("nbss", cols, rows),
        ]
    )


def _card(o: OtolithRow, root: Path | None) -> str:
    thumb, heat = image_uri(root, o.thumbnail), image_uri(root, o.heatmap)
    label = esc(o.specimen_id or "(no specimen id)")
    if thumb is None and heat is None:
        where = "no evidence directory given" if root is None else "evidence files not found"
        images = f'<p class="missing">images unavailable: {esc(where)}</p>'
    else:
        images = (
            '<div class="pair">'
            + "".join(
                f'<img src="{uri}" alt="{esc(kind)} of {label}">'
                if uri
                else f'<p class="missing">{esc(kind)} missing</p>'
                for kind, uri in (("thumbnail", thumb), ("heat map", heat))
            )
            + "</div>"
        )
    return (
        f'<div class="card" data-specimen="{label}">{images}<b>{label}</b><br>'
        f"score {fmt(o.score)} (threshold {fmt(o.threshold)})<br>"
        f"{esc(o.instrument)}, {esc(when(o.time_ns))}</div>"
    )


def otoliths(data: ReportData) -> str:
    """The otoliths section."""
    if not data.otoliths:
        return '<p class="note">No otolith frames in this selection.</p>'
    flagged = data.flagged()
    parts = [
        f'<p class="note">{len(data.otoliths)} otoliths scored, {len(flagged)} flagged '
        f"({fmt(100 * len(flagged) / len(data.otoliths))} %).</p>",
        figure(plots.otolith_scores(data), "Anomaly scores (stacked: normal, flagged).", ""),
    ]
    if not flagged:
        parts.append('<p class="note">No otolith was flagged.</p>')
        return "".join(parts)
    shown = flagged[:GALLERY_LIMIT]
    parts.append("<h3>Flagged specimens: thumbnail and heat map</h3>")
    parts.append(
        '<div class="gallery">' + "".join(_card(o, data.evidence_root) for o in shown) + "</div>"
    )
    rows = [
        {
            "key": o.specimen_id or "",
            "specimen": o.specimen_id or "–",
            "time": when(o.time_ns),
            "instrument": o.instrument,
            "score": o.score,
            "threshold": o.threshold,
        }
        for o in flagged
    ]
    cols = [
        Column("specimen", "specimen", False),
        Column("time", "time", False),
        Column("instrument", "instrument", False),
        Column("score", "score"),
        Column("threshold", "threshold"),
    ]
    if len(flagged) > len(shown):
        parts.append(
            f'<p class="note">Images for the {len(shown)} highest scores; all '
            f"{len(flagged)} are listed below.</p>"
        )
    parts.append(table("flagged", cols, rows))
    return "".join(parts)


def fish(data: ReportData) -> str:
    """The fish section."""
    if not data.fish:
        return '<p class="note">No fish sightings in this selection.</p>'
    seen = data.individuals()
    rows = []
    for ind, n in seen.items():
        mine = [f for f in data.fish if f.individual == ind]
        rows.append(
            {
                "key": ind,
                "individual": ind,
                "sightings": n,
                "first": when(mine[0].time_ns),
                "last": when(mine[-1].time_ns),
                "similarity": sum(f.similarity for f in mine) / n,
                "new": "yes" if any(f.new_individual for f in mine) else "no",
                "provisional": "yes" if mine[-1].provisional else "no",
            }
        )
    cols = [
        Column("individual", "individual", False),
        Column("sightings", "sightings"),
        Column("first", "first seen", False),
        Column("last", "last seen", False),
        Column("similarity", "mean similarity"),
        Column("new", "enrolled here", False),
        Column("provisional", "provisional", False),
    ]
    return "".join(
        [
            f'<p class="note">{len(data.fish)} sightings of {len(seen)} individuals.</p>',
            figure(plots.fish_sightings(data), "Sightings per individual (most seen).", ""),
            table("fish", cols, rows),
        ]
    )


def pipeline(data: ReportData) -> str:
    """The pipeline section."""
    if not data.frames:
        return '<p class="note">No frames in this selection.</p>'
    rows = [{"key": t, "task": t, **s} for t, s in data.timing_by_task().items()]
    cols = [
        Column("task", "task", False),
        Column("frames", "frames"),
        Column("objects", "objects"),
        Column("decode_ms_p50", "decode p50 (ms)"),
        Column("infer_ms_p50", "inference p50 (ms)"),
        Column("latency_ms_p50", "latency p50 (ms)"),
        Column("latency_ms_p95", "p95 (ms)"),
        Column("latency_ms_p99", "p99 (ms)"),
    ]
    parts = [
        table("timing", cols, rows),
        figure(plots.latency_over_time(data), "Latency from broker to stored record.", ""),
    ]
    if data.pipeline is None:
        parts.append(
            '<p class="note">The daemon\'s own health points (pipeline: throughput, '
            "lag, dead letters, outbox backlog) are kept in InfluxDB only; make the "
            "report with --source influx to include them.</p>"
        )
    elif not data.pipeline:
        parts.append('<p class="note">No pipeline health points in this time range.</p>')
    else:
        workers = []
        for w in sorted({p.worker for p in data.pipeline}):
            mine = [p for p in data.pipeline if p.worker == w]
            fps = [p.frames_per_s for p in mine if p.frames_per_s is not None]
            workers.append(
                {
                    "key": w,
                    "worker": w,
                    "points": len(mine),
                    "fps": sum(fps) / len(fps) if fps else None,
                    "errors": sum(p.errors or 0 for p in mine),
                    "lag": max((p.lag for p in mine if p.lag is not None), default=None),
                    "backlog": max(
                        (p.outbox_backlog for p in mine if p.outbox_backlog is not None),
                        default=None,
                    ),
                }
            )
        cols = [
            Column("worker", "worker", False),
            Column("points", "points"),
            Column("fps", "mean frames/s"),
            Column("errors", "dead letters"),
            Column("lag", "max lag (messages)"),
            Column("backlog", "max outbox backlog"),
        ]
        parts += [
            table("workers", cols, workers),
            figure(plots.pipeline_throughput(data), "The daemon's throughput.", ""),
        ]
    return "".join(parts)


__all__ = ["fish", "otoliths", "pipeline", "plankton", "spectrum", "stations"]
