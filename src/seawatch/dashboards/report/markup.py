"""The report's markup helpers: its style sheet, escaping, number and time formats, tables,
figures and embedded images (one self-contained page, nothing fetched when it is viewed).

Numeric table cells carry their exact value in ``data-value`` (the text is rounded for
reading), so tools and tests can read the numbers back.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2

IMAGE_SIDE = 240  # embedded evidence images are shrunk to this longer side (px)

STYLE_SHEET = """
:root { --ink: #1d2733; --muted: #5b6b7b; --line: #d7dee6; --accent: #0b6e99; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; background: #fff; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px;
  margin-top: 28px; color: var(--accent); }
h3 { font-size: 15px; margin: 16px 0 6px; }
.sub, .note, figcaption { color: var(--muted); }
.summary { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 8px; margin: 12px 0 16px; }
.summary div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.summary b { display: block; font-size: 20px; }
.summary span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; }
th { background: #f2f5f8; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0; }
figure svg { width: 100%; height: auto; max-height: 420px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px; font-size: 12px; }
.card .pair { display: flex; gap: 4px; }
.card img { width: 50%; height: auto; border-radius: 3px; }
.missing { color: #a33; }
footer { margin-top: 32px; font-size: 12px; color: var(--muted); }
@page { size: A4; margin: 12mm; }
@media print { body { padding: 0; max-width: none; } section, figure, .card, table
  { break-inside: avoid; } h2 { break-after: avoid; } }
"""


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: the row key it shows, its header, and whether it is numeric."""

    key: str
    header: str
    numeric: bool = True


def esc(value: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(value), quote=True)


def fmt(value: float | int | None) -> str:
    """A number rounded for reading (thousands separated); an en dash for missing."""
    if value is None:
        return "–"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.3g}"


def when(time_ns: int) -> str:
    """A UTC time stamp with milliseconds."""
    stamp = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d} UTC"


def duration(span_ns: int) -> str:
    """A time span in the largest fitting unit (``0.6 s``, ``3.2 h``)."""
    seconds = span_ns / 1e9
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 86400:.3g} d"


def table(table_id: str, columns: Sequence[Column], rows: Sequence[dict[str, object]]) -> str:
    """A table whose numeric cells keep their exact value in ``data-value``."""
    head = "".join(f"<th>{esc(c.header)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c.key)
            if c.numeric and isinstance(value, int | float):
                cells.append(
                    f'<td class="n" data-col="{c.key}" data-value="{value!r}">{fmt(value)}</td>'
                )
            elif c.numeric and value is None:
                cells.append(f'<td class="n" data-col="{c.key}">–</td>')
            else:
                cells.append(f'<td data-col="{c.key}">{esc(value)}</td>')
        key = esc(row.get("key", ""))
        body.append(f'<tr data-key="{key}">' + "".join(cells) + "</tr>")
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def figure(svg: str | None, caption: str, missing: str) -> str:
    """A figure with its caption, or a note saying why there is none."""
    if svg is None:
        return f'<p class="note">{esc(missing)}</p>'
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def image_uri(root: Path | None, relative: str | None) -> str | None:
    """An evidence JPEG (shrunk to ``IMAGE_SIDE``) as a data: URI; None when unreadable."""
    if root is None or not relative:
        return None
    path = Path(root) / relative
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    h, w = image.shape[:2]
    if max(h, w) > IMAGE_SIDE:
        f = IMAGE_SIDE / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode()


__all__ = [
    "IMAGE_SIDE",
    "STYLE_SHEET",
    "Column",
    "duration",
    "esc",
    "figure",
    "fmt",
    "image_uri",
    "table",
    "when",
]
