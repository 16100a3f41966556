"""What the cruise report shows, as tidy tables, loaded from the local store (here) or from
InfluxDB (:mod:`.data_influx`).

Both loaders fill the same :class:`ReportData` rows from the same records (the InfluxDB
points are written from the records by :mod:`seawatch.storage.line_protocol`), and every
number in the report is computed from these rows by the methods below, so the two sources
give the same report. Concentrations are pooled (sum of counts / sum of imaged volume), never
means of per-frame ratios.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from seawatch.contracts.records import UNKNOWN
from seawatch.dashboards.report.rows import (
    FishRow,
    FrameRow,
    NbssPoint,
    OtolithRow,
    PipelineRow,
    SizeRow,
    TaxonRow,
    TimeBin,
)
from seawatch.storage.local_store import open_readonly
from seawatch.storage.size_spectrum import SIZE_CLASSES, biovolume_by_class


@dataclass
class ReportData:
    """Everything the report shows, as rows sorted by time (then instrument, taxon)."""

    source: str
    cruise: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    evidence_root: Path | None = None
    frames: list[FrameRow] = field(default_factory=list)
    taxa: list[TaxonRow] = field(default_factory=list)
    sizes: list[SizeRow] = field(default_factory=list)
    otoliths: list[OtolithRow] = field(default_factory=list)
    fish: list[FishRow] = field(default_factory=list)
    pipeline: list[PipelineRow] | None = None  # None: the source keeps no pipeline points

    def sort(self) -> ReportData:
        """Sort every table in a source-independent order; returns self."""
        self.frames.sort(key=lambda r: (r.time_ns, r.instrument))
        self.taxa.sort(key=lambda r: (r.time_ns, r.instrument, r.taxon))
        self.sizes.sort(key=lambda r: (r.time_ns, r.instrument))
        self.otoliths.sort(key=lambda r: (r.time_ns, r.instrument))
        self.fish.sort(key=lambda r: (r.time_ns, r.instrument, r.sighting))
        if self.pipeline is not None:
            self.pipeline.sort(key=lambda r: (r.time_ns, r.worker))
        return self

    # -- summary -------------------------------------------------------------------------
    @property
    def plankton_frames(self) -> list[FrameRow]:
        """Frames of the plankton task."""
        return [f for f in self.frames if f.task == "plankton"]

    def time_span(self) -> tuple[int, int] | None:
        """First and last time of any row, None when the report is empty."""
        times = [r.time_ns for rows in (self.frames, self.otoliths, self.fish) for r in rows]
        return (min(times), max(times)) if times else None

    def cruises(self) -> list[str]:
        """The cruises the frames belong to."""
        return sorted({f.cruise for f in self.frames if f.cruise})

    def stations(self) -> list[str]:
        """The stations of the plankton frames."""
        return sorted({f.station for f in self.plankton_frames})

    def object_total(self) -> int:
        """Objects in all plankton frames."""
        return sum(f.objects for f in self.plankton_frames)

    def taxon_totals(self) -> dict[str, int]:
        """Objects per taxon, most common first."""
        totals: dict[str, int] = defaultdict(int)
        for row in self.taxa:
            totals[row.taxon] += row.count
        return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))

    def imaged_volume_m3(self, station: str | None = None) -> float:
        """Volume imaged by the plankton frames that report it (m³)."""
        return sum(
            f.volume_ml * 1e-6
            for f in self.plankton_frames
            if f.volume_ml is not None and (station is None or f.station == station)
        )

    def _with_volume(self) -> set[tuple[int, str]]:
        return {(f.time_ns, f.instrument) for f in self.plankton_frames if f.volume_ml is not None}

    def concentrations(self, station: str | None = None) -> dict[str, float]:
        """Pooled concentration per taxon (ind./m³) over the frames with a volume; empty
        when no frame reports its volume."""
        volume = self.imaged_volume_m3(station)
        if volume <= 0:
            return {}
        keys = self._with_volume()
        counts: dict[str, int] = defaultdict(int)
        for row in self.taxa:
            if (row.time_ns, row.instrument) in keys and station in (None, row.station):
                counts[row.taxon] += row.count
        return {taxon: counts.get(taxon, 0) / volume for taxon in self.taxon_totals()}

    def station_counts(self) -> dict[str, dict[str, int]]:
        """``station -> taxon -> count``."""
        table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in self.taxa:
            table[row.station][row.taxon] += row.count
        return {s: dict(t) for s, t in sorted(table.items())}

    def binned(self, bin_ns: int) -> dict[int, TimeBin]:
        """Plankton frames per time bin (keyed by the bin's start, ns)."""
        bins: dict[int, TimeBin] = {}
        keys = self._with_volume()
        for f in self.plankton_frames:
            entry = bins.setdefault(f.time_ns // bin_ns * bin_ns, TimeBin())
            if f.volume_ml is not None:
                entry.volume_m3 += f.volume_ml * 1e-6
        for row in self.taxa:
            entry = bins.get(row.time_ns // bin_ns * bin_ns)
            if entry is None:
                continue
            entry.counts[row.taxon] = entry.counts.get(row.taxon, 0) + row.count
            if (row.time_ns, row.instrument) in keys:
                entry.counted[row.taxon] = entry.counted.get(row.taxon, 0) + row.count
        return dict(sorted(bins.items()))

    def nbss(self, station: str | None = None) -> list[NbssPoint]:
        """NBSS per non-empty ESD class: sum(biovolume) / sum(volume) / class width (m⁻³)."""
        rows = [r for r in self.sizes if station is None or r.station == station]
        volume = sum(r.volume_m3 for r in rows)
        if volume <= 0:
            return []
        totals: dict[str, float] = defaultdict(float)
        for r in rows:
            for name, value in r.biovolume_mm3.items():
                totals[name] += value
        return [
            NbssPoint(c, totals[c.field], totals[c.field] / volume / c.width_mm3)
            for c in SIZE_CLASSES
            if totals.get(c.field, 0.0) > 0
        ]

    def flagged(self) -> list[OtolithRow]:
        """Flagged otoliths, highest score first."""
        return sorted((o for o in self.otoliths if o.anomaly), key=lambda o: -o.score)

    def individuals(self) -> dict[str, int]:
        """Sightings per fish individual, most seen first."""
        seen: dict[str, int] = defaultdict(int)
        for row in self.fish:
            seen[row.individual] += 1
        return dict(sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))

    def timing_by_task(self) -> dict[str, dict[str, float]]:
        """Per task: frames, objects and decode/infer/latency percentiles (ms)."""
        out: dict[str, dict[str, float]] = {}
        for task in sorted({f.task for f in self.frames}):
            rows = [f for f in self.frames if f.task == task]
            stats: dict[str, float] = {"frames": len(rows), "objects": sum(f.objects for f in rows)}
            for name in ("decode_ms", "infer_ms", "latency_ms"):
                values = sorted(getattr(f, name) for f in rows)
                stats[f"{name}_mean"] = sum(values) / len(values)
                for q in (50, 95, 99):
                    stats[f"{name}_p{q}"] = percentile(values, q)
            out[task] = stats
        return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (NumPy's default method)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


# -- the local store ---------------------------------------------------------------------
def _where(alias: str, cruise: str | None, start_ns: int | None, end_ns: int | None):
    clauses, params = [], []
    if cruise is not None:
        clauses.append(f"{alias}.cruise = ?")
        params.append(cruise)
    if start_ns is not None:
        clauses.append(f"{alias}.captured_at_ns >= ?")
        params.append(start_ns)
    if end_ns is not None:
        clauses.append(f"{alias}.captured_at_ns < ?")
        params.append(end_ns)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def from_local_store(
    path: Path,
    evidence_root: Path | None = None,
    cruise: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> ReportData:
    """Load the report's tables from a local store (SQLite), ``start <= time < end``."""
    db = open_readonly(Path(path))
    try:
        return _load_local(db, evidence_root, cruise, start_ns, end_ns)
    finally:
        db.close()


def _load_local(db: sqlite3.Connection, evidence_root, cruise, start_ns, end_ns) -> ReportData:
    data = ReportData("local store", cruise, start_ns, end_ns, evidence_root, pipeline=None)
    where, params = _where("f", cruise, start_ns, end_ns)
    frames = db.execute(
        "SELECT f.uid, f.captured_at_ns, f.cruise, f.instrument, f.station, f.task, f.n_objects,"
        " f.volume_ml, f.pixel_size_um, f.decode_ms, f.infer_ms, f.latency_ms FROM frames f"
        + where,
        params,
    ).fetchall()
    objects: dict[str, list[tuple[str, float | None, float | None]]] = defaultdict(list)
    for uid, taxon, esd, bv in db.execute(
        "SELECT o.frame_uid, o.taxon, o.esd_um, o.biovolume_um3 FROM objects o"
        " JOIN frames f ON f.uid = o.frame_uid" + where + " ORDER BY o.frame_uid, o.idx",
        params,
    ):
        objects[uid].append((taxon, esd, bv))
    for uid, t, cr, inst, st, task, n, vol, px, dec, inf, lat in frames:
        members = objects.get(uid, [])
        unknown = sum(m[0] == UNKNOWN for m in members) if task == "plankton" else None
        data.frames.append(FrameRow(t, cr, inst, st, task, n, unknown, vol, dec, inf, lat))
        if task != "plankton":
            continue
        by_taxon: dict[str, list[float | None]] = defaultdict(list)
        for taxon, _esd, bv in members:
            by_taxon[taxon].append(bv)
        for taxon, volumes in by_taxon.items():
            known = [v for v in volumes if v is not None]
            bv_mm3 = sum(known) * 1e-9 if known else None
            data.taxa.append(TaxonRow(t, inst, st, taxon, len(volumes), bv_mm3))
        if vol is not None and px is not None:
            esds = [esd for _t, esd, _bv in members if esd is not None]
            data.sizes.append(SizeRow(t, inst, st, vol * 1e-6, biovolume_by_class(esds)))
    for row in db.execute(
        "SELECT f.captured_at_ns, f.instrument, o.specimen_id, o.score, o.anomaly, o.threshold,"
        " o.thumbnail, o.heatmap FROM otolith o JOIN frames f ON f.uid = o.frame_uid" + where,
        params,
    ):
        data.otoliths.append(OtolithRow(*row[:4], bool(row[4]), *row[5:]))
    # every sighting of a tank frame (a store no daemon has opened since sightings had an
    # index has one a frame: index 0)
    idx = "x.idx" if any(c[1] == "idx" for c in db.execute("PRAGMA table_info(fish)")) else "0"
    for t, inst, ind, sim, new, prov, k in db.execute(
        "SELECT f.captured_at_ns, f.instrument, x.individual, x.similarity, x.new_individual,"
        f" x.provisional, {idx} FROM fish x JOIN frames f ON f.uid = x.frame_uid" + where,
        params,
    ):
        data.fish.append(FishRow(t, inst, ind, sim, bool(new), bool(prov), k))
    return data.sort()


__all__ = [
    "FishRow",
    "FrameRow",
    "NbssPoint",
    "OtolithRow",
    "PipelineRow",
    "ReportData",
    "SizeRow",
    "TaxonRow",
    "TimeBin",
    "from_local_store",
    "percentile",
]
