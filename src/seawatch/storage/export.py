"""Per-object export from the local store: an EcoTaxa-importable TSV, or Parquet.

Both formats carry the same columns (:data:`COLUMNS`), named with EcoTaxa's prefixes
(``object_``, ``img_``, ``sample_``, ``acq_``, ``process_``). The TSV has the header row, then
the ``[t]``/``[f]`` type row, then one row per object; values are kept within EcoTaxa's limits
(sanitised unique ids, no tabs or newlines in text, empty cells for missing numbers, lat/lon in
range, non-negative depth). ``img_file_name`` is a deterministic name
(``<frame uid>_<idx>.png``, sanitised); :mod:`seawatch.storage.image_export` writes the kept
crops under those names (a zip EcoTaxa imports, or a training folder).
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from seawatch.contracts.errors import StorageError
from seawatch.storage.local_store import open_readonly

Format = Literal["tsv", "parquet"]
FORMATS: tuple[Format, ...] = ("tsv", "parquet")

# (name, kind): "t" text, "f" float, "i" integer ("[f]" in the TSV, int64 in Parquet).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("object_id", "t"),
    ("object_lat", "f"),
    ("object_lon", "f"),
    ("object_date", "t"),
    ("object_time", "t"),
    ("object_captured_at", "t"),
    ("object_depth_min", "f"),
    ("object_depth_max", "f"),
    ("object_annotation_category", "t"),
    ("object_annotation_status", "t"),
    ("object_confidence", "f"),
    ("object_bbox_x", "i"),
    ("object_bbox_y", "i"),
    ("object_bbox_w", "i"),
    ("object_bbox_h", "i"),
    ("object_area", "f"),
    ("object_major", "f"),
    ("object_minor", "f"),
    ("object_feret", "f"),
    ("object_esd", "f"),
    ("object_area_um2", "f"),
    ("object_major_um", "f"),
    ("object_minor_um", "f"),
    ("object_feret_um", "f"),
    ("object_esd_um", "f"),
    ("object_biovolume_um3", "f"),
    ("img_file_name", "t"),
    ("img_rank", "i"),
    ("sample_id", "t"),
    ("sample_cruise", "t"),
    ("sample_station", "t"),
    ("acq_id", "t"),
    ("acq_instrument", "t"),
    ("acq_frame_kind", "t"),
    ("acq_pixel_size_um", "f"),
    ("acq_volume_ml", "f"),
    ("process_id", "t"),
    ("process_model", "t"),
    ("process_model_version", "t"),
    ("process_date", "t"),
    ("process_source_topic", "t"),
    ("process_source_partition", "i"),
    ("process_source_offset", "i"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
MAX_TEXT = 250  # EcoTaxa keeps free text columns in 250-character fields
_BATCH = 10_000

_QUERY = """
SELECT o.frame_uid, o.idx, o.taxon, o.confidence, o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h,
       o.area_px, o.major_px, o.minor_px, o.feret_px, o.esd_px,
       o.area_um2, o.major_um, o.minor_um, o.feret_um, o.esd_um, o.biovolume_um3,
       f.instrument, f.captured_at_ns, f.cruise, f.station, f.sample_id, f.lat, f.lon,
       f.depth_m, f.volume_ml, f.pixel_size_um, f.topic, f.partition, f."offset",
       f.model, f.model_version, f.stored_at_ns, o.label, o.status, o.crop,
       f.frame_kind
FROM objects o JOIN frames f ON f.uid = o.frame_uid
WHERE {where}
ORDER BY f.captured_at_ns, f.uid, o.idx
"""


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which objects to export: a cruise and/or ``[since_ns, until_ns)`` on capture time."""

    cruise: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    status: str | None = None  # predicted, validated or dubious (what people decided)


def format_from_path(path: Path) -> Format | None:
    """The format a file suffix names (``.tsv``, ``.parquet``), or None."""
    return _SUFFIXES.get(path.suffix.lower())


_SUFFIXES: dict[str, Format] = {".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.\-]")


def sanitise_id(value: str) -> str:
    """Only ``[A-Za-z0-9_.-]``, at most :data:`MAX_TEXT` characters, never empty."""
    return _UNSAFE_ID.sub("_", value)[:MAX_TEXT] or "_"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).replace("\t", " ").splitlines()).strip()
    return text[:MAX_TEXT]


def _number(value: float | None, low: float = -math.inf, high: float = math.inf) -> float | None:
    if value is None or not math.isfinite(value) or not low <= value <= high:
        return None
    return float(value)


def _row(r: sqlite3.Row | tuple[Any, ...], object_id: str) -> dict[str, Any]:
    (uid, idx, taxon, confidence, bx, by, bw, bh, area, major, minor, feret, esd) = r[:13]
    (area_um2, major_um, minor_um, feret_um, esd_um, biovolume) = r[13:19]
    (instrument, captured_ns, cruise, station, sample_id, lat, lon, depth) = r[19:27]
    (volume_ml, pixel_um, topic, partition, offset, model, version, stored_ns) = r[27:35]
    label, status, crop, frame_kind = r[35:39]
    captured = datetime.fromtimestamp(captured_ns // 10**9, UTC)
    depth_m = _number(depth)
    depth_m = None if depth_m is None else max(depth_m, 0.0)
    return {
        "object_id": object_id,
        "object_lat": _number(lat, -90.0, 90.0),
        "object_lon": _number(lon, -180.0, 180.0),
        "object_date": captured.strftime("%Y%m%d"),
        "object_time": captured.strftime("%H%M%S"),
        "object_captured_at": (
            captured.strftime("%Y-%m-%dT%H:%M:%S") + f".{captured_ns % 10**9:09d}Z"
        ),
        "object_depth_min": depth_m,
        "object_depth_max": depth_m,
        "object_annotation_category": _text(label or taxon),  # what a person said, if anyone
        "object_annotation_status": status or "predicted",
        "object_confidence": _number(confidence, 0.0, 1.0),
        "object_bbox_x": bx,
        "object_bbox_y": by,
        "object_bbox_w": bw,
        "object_bbox_h": bh,
        "object_area": _number(area),
        "object_major": _number(major),
        "object_minor": _number(minor),
        "object_feret": _number(feret),
        "object_esd": _number(esd),
        "object_area_um2": _number(area_um2),
        "object_major_um": _number(major_um),
        "object_minor_um": _number(minor_um),
        "object_feret_um": _number(feret_um),
        "object_esd_um": _number(esd_um),
        "object_biovolume_um3": _number(biovolume),
        "img_file_name": sanitise_id(f"{uid}_{idx}") + ".png",
        "img_rank": 0,
        "sample_id": sanitise_id(sample_id or f"{cruise}_{station}"),
        "sample_cruise": _text(cruise),
        "sample_station": _text(station),
        "acq_id": sanitise_id(uid),
        "acq_instrument": _text(instrument),
        "acq_frame_kind": _text(frame_kind),  # roi or full (segmented): the ranking fit reads it
        "acq_pixel_size_um": _number(pixel_um, 0.0),
        "acq_volume_ml": _number(volume_ml, 0.0),
        "process_id": sanitise_id(f"{model}_{version}"),
        "process_model": _text(model),
        "process_model_version": _text(version),
        "process_date": datetime.fromtimestamp(stored_ns // 10**9, UTC).strftime("%Y%m%d"),
        "process_source_topic": _text(topic),
        "process_source_partition": partition,
        "process_source_offset": offset,
        "_crop": crop,  # dropped by iter_rows unless asked for (zips and folders)
    }


def iter_rows(
    db: sqlite3.Connection, flt: ExportFilter, *, with_crop: bool = False
) -> Iterator[dict[str, Any]]:
    """The export rows for ``flt``, by capture time; object ids unique after sanitising
    (``with_crop``: each row also holds its kept crop's digest under ``_crop``)."""
    clauses, params = ["1"], []
    if flt.cruise is not None:
        clauses.append("f.cruise = ?")
        params.append(flt.cruise)
    if flt.since_ns is not None:
        clauses.append("f.captured_at_ns >= ?")
        params.append(flt.since_ns)
    if flt.until_ns is not None:
        clauses.append("f.captured_at_ns < ?")
        params.append(flt.until_ns)
    if flt.status is not None:
        clauses.append("o.status = ?")
        params.append(flt.status)
    seen: set[str] = set()
    for r in db.execute(_QUERY.format(where=" AND ".join(clauses)), params):
        base = sanitise_id(f"{r[0]}_{r[1]}")
        object_id, n = base, 1
        while object_id in seen:  # two ids can collide once unsafe characters become "_"
            n += 1
            object_id = f"{base[: MAX_TEXT - 8]}-{n}"
        seen.add(object_id)
        row = _row(r, object_id)
        if not with_crop:
            del row["_crop"]
        yield row


def _tsv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "t":
        return str(value)
    if kind == "i":
        return str(int(value))
    return repr(float(value))


def write_tsv(rows: Iterator[dict[str, Any]], out: Path) -> int:
    """Write the EcoTaxa TSV (header, type row, rows); return the number of objects."""
    n = 0
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(COLUMN_NAMES) + "\n")
        fh.write("\t".join("[t]" if kind == "t" else "[f]" for _, kind in COLUMNS) + "\n")
        for row in rows:
            fh.write("\t".join(_tsv_cell(row[name], kind) for name, kind in COLUMNS) + "\n")
            n += 1
    return n


def write_parquet(rows: Iterator[dict[str, Any]], out: Path) -> int:
    """Write the same columns to Parquet (text: string, [f]: float64, ints: int64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"t": pa.string(), "f": pa.float64(), "i": pa.int64()}
    schema = pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS])
    n = 0
    with pq.ParquetWriter(out, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n, batch = n + len(batch), []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


def export_objects(store: Path, out: Path, fmt: str, flt: ExportFilter) -> int:
    """Export the store's objects matching ``flt`` to ``out``; return how many were written.

    The file is written beside ``out`` and renamed into place, so a failed export leaves no
    partial file behind.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    db = open_readonly(store)
    part = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = iter_rows(db, flt)
        n = write_tsv(rows, part) if fmt == "tsv" else write_parquet(rows, part)
        part.replace(out)
        return n
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read objects from the local store {store}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"cannot write the export {out}: {exc}; check --out") from exc
    finally:
        db.close()
        part.unlink(missing_ok=True)


__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "FORMATS",
    "ExportFilter",
    "Format",
    "export_objects",
    "format_from_path",
    "iter_rows",
    "sanitise_id",
    "write_parquet",
    "write_tsv",
]
