"""The cruise report's tables loaded from InfluxDB (InfluxQL), page by page.

The points are written from the same records as the local store's rows
(:mod:`seawatch.storage.line_protocol`), so :func:`from_influx` fills the same
:class:`~seawatch.dashboards.report.data.ReportData` as :func:`.data.from_local_store`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

from seawatch.dashboards.influxql import InfluxQLClient
from seawatch.dashboards.report.data import ReportData
from seawatch.dashboards.report.rows import (
    FishRow,
    FrameRow,
    OtolithRow,
    PipelineRow,
    SizeRow,
    TaxonRow,
)
from seawatch.storage.size_spectrum import SIZE_CLASSES

_PAGE = 10_000


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _select(
    client: InfluxQLClient,
    measurement: str,
    cruise: str | None,
    start_ns: int | None,
    end_ns: int | None,
) -> Iterable[dict[str, Any]]:
    """Every raw point of a measurement (all fields and tags), page by page."""
    clauses = []
    if cruise is not None:
        clauses.append(f'"cruise" = {_quote(cruise)}')
    if start_ns is not None:
        clauses.append(f"time >= {int(start_ns)}")
    if end_ns is not None:
        clauses.append(f"time < {int(end_ns)}")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    offset = 0
    while True:
        q = f'SELECT * FROM "{measurement}"{where} ORDER BY time LIMIT {_PAGE} OFFSET {offset}'
        rows = [row for series in client.query(q) for row in series.rows()]
        yield from rows
        if len(rows) < _PAGE:
            return
        offset += _PAGE


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool(value: Any) -> bool:
    return bool(value) if not isinstance(value, str) else value.lower() == "true"


def from_influx(
    client: InfluxQLClient,
    cruise: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    evidence_root: Path | None = None,
) -> ReportData:
    """Load the report's tables from InfluxDB (InfluxQL), ``start <= time < end``."""
    data = ReportData("InfluxDB", cruise, start_ns, end_ns, evidence_root, pipeline=[])
    span = (cruise, start_ns, end_ns)
    for p in _select(client, "frames", *span):
        unknown = p.get("unknown_objects")
        data.frames.append(
            FrameRow(
                int(p["time"]),
                p.get("cruise") or "",
                p.get("instrument") or "",
                p.get("station") or "",
                p.get("task") or "",
                int(p.get("objects") or 0),
                None if unknown is None else int(unknown),
                _float(p.get("volume_ml")),
                float(p.get("decode_ms") or 0.0),
                float(p.get("infer_ms") or 0.0),
                float(p.get("latency_ms") or 0.0),
            )
        )
    for p in _select(client, "plankton", *span):
        data.taxa.append(
            TaxonRow(
                int(p["time"]),
                p.get("instrument") or "",
                p.get("station") or "",
                p.get("taxon") or "",
                int(p.get("count") or 0),
                _float(p.get("biovolume_mm3")),
            )
        )
    classes = [c.field for c in SIZE_CLASSES]
    for p in _select(client, "plankton_size", *span):
        if p.get("volume_m3") is None:
            continue
        biovolume = {f: float(p[f]) for f in classes if p.get(f) is not None}
        data.sizes.append(
            SizeRow(
                int(p["time"]),
                p.get("instrument") or "",
                p.get("station") or "",
                float(p["volume_m3"]),
                biovolume,
            )
        )
    for p in _select(client, "otolith", *span):
        data.otoliths.append(
            OtolithRow(
                int(p["time"]),
                p.get("instrument") or "",
                p.get("specimen_id"),
                float(p["score"]),
                _bool(p.get("anomaly")),
                float(p["threshold"]),
                p.get("thumbnail"),
                p.get("heatmap"),
            )
        )
    for p in _select(client, "fish", *span):
        data.fish.append(
            FishRow(
                int(p["time"]),
                p.get("instrument") or "",
                str(p["individual"]),
                float(p["similarity"]),
                _bool(p.get("new_individual")),
                _bool(p.get("provisional")),
                int(p.get("sighting") or 0),  # a tank frame's later fish are tagged
            )
        )
    # Pipeline points carry no cruise tag: only the time window applies.
    names = [f.name for f in fields(PipelineRow)][2:]
    for p in _select(client, "pipeline", None, start_ns, end_ns):
        values = [_float(p.get(n)) for n in names]
        data.pipeline.append(PipelineRow(int(p["time"]), p.get("worker") or "", *values))
    return data.sort()


__all__ = ["from_influx"]
