"""The report page: one self-contained HTML file (inline CSS and SVG, images as data: URIs).

Nothing is fetched when the page is viewed: no scripts, no external style sheets or fonts.
The helpers (style sheet, tables, figures, formats) are in :mod:`.markup`, the sections in
:mod:`.sections`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from seawatch import __version__
from seawatch.dashboards.report import sections
from seawatch.dashboards.report.data import ReportData
from seawatch.dashboards.report.markup import STYLE_SHEET, duration, esc, fmt, when


def _summary(data: ReportData) -> str:
    span = data.time_span()
    tasks: dict[str, int] = {}
    for f in data.frames:
        tasks[f.task] = tasks.get(f.task, 0) + 1
    cells = [
        ("cruise", ", ".join(data.cruises()) or "–", "cruise"),
        ("frames", fmt(len(data.frames)), ", ".join(f"{n} {t}" for t, n in tasks.items())),
        ("objects", fmt(data.object_total()), "in plankton frames"),
        ("taxa", fmt(len(data.taxon_totals())), "classes seen"),
        ("stations", fmt(len(data.stations())), "with plankton frames"),
        ("flagged", fmt(len(data.flagged())), f"of {len(data.otoliths)} otoliths"),
        ("individuals", fmt(len(data.individuals())), f"fish in {len(data.fish)} sightings"),
    ]
    if span is not None:
        cells.insert(1, ("span", duration(span[1] - span[0]), "of capture time"))
    items = "".join(
        f'<div id="summary-{k}"><b>{esc(v)}</b><span>{esc(note)}</span></div>'
        for k, v, note in cells
    )
    return f'<div class="summary">{items}</div>'


def render(data: ReportData, title: str | None = None) -> str:
    """The whole report as one HTML document."""
    cruise = ", ".join(data.cruises()) or data.cruise or "all cruises"
    title = title or f"seawatch cruise report: {cruise}"
    span = data.time_span()
    span_text = f"{when(span[0])} – {when(span[1])}" if span else "no data in the selection"
    filters = [f"source: {data.source}"]
    if data.cruise:
        filters.append(f"cruise = {data.cruise}")
    if data.start_ns is not None:
        filters.append(f"from {when(data.start_ns)}")
    if data.end_ns is not None:
        filters.append(f"until {when(data.end_ns)}")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        ("plankton", "Plankton: counts and concentrations over time", sections.plankton(data)),
        ("stations", "By station", sections.stations(data)),
        ("spectrum", "Size spectrum (NBSS)", sections.spectrum(data)),
        ("otoliths", "Otoliths: flagged specimens", sections.otoliths(data)),
        ("fish", "Fish sightings", sections.fish(data)),
        ("pipeline", "Pipeline statistics", sections.pipeline(data)),
    ]
    body = "".join(
        f'<section id="{k}"><h2>{esc(h)}</h2>{content}</section>' for k, h, content in parts
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{esc(title)}</title><style>{STYLE_SHEET}</style></head>
<body><header><h1>{esc(title)}</h1>
<p class="sub">{esc(span_text)} · {esc("; ".join(filters))}</p>{_summary(data)}</header>
{body}
<footer>Generated {esc(generated)} by seawatch {esc(__version__)}. Times are capture times
(UTC). Self-contained: open offline, print to PDF.</footer>
</body></html>
"""


__all__ = ["render"]
