"""The report's tidy tables: one row type per measurement, as both sources fill them."""

from __future__ import annotations

from dataclasses import dataclass, field

from seawatch.storage.size_spectrum import SizeClass


@dataclass(frozen=True, slots=True)
class FrameRow:
    """One frame: where and when, its object count, imaged volume and timings."""

    time_ns: int
    cruise: str
    instrument: str
    station: str
    task: str
    objects: int
    unknown_objects: int | None
    volume_ml: float | None
    decode_ms: float
    infer_ms: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class TaxonRow:
    """One taxon in one plankton frame (the ``plankton`` point)."""

    time_ns: int
    instrument: str
    station: str
    taxon: str
    count: int
    biovolume_mm3: float | None


@dataclass(frozen=True, slots=True)
class SizeRow:
    """One frame's imaged volume (m³) and biovolume (mm³) per ESD class field."""

    time_ns: int
    instrument: str
    station: str
    volume_m3: float
    biovolume_mm3: dict[str, float]


@dataclass(frozen=True, slots=True)
class OtolithRow:
    """One scored otolith; evidence paths are relative to the evidence root."""

    time_ns: int
    instrument: str
    specimen_id: str | None
    score: float
    anomaly: bool
    threshold: float
    thumbnail: str | None
    heatmap: str | None


@dataclass(frozen=True, slots=True)
class FishRow:
    """One fish sighting; ``sighting``: its index in a whole tank frame (0 for a crop)."""

    time_ns: int
    instrument: str
    individual: str
    similarity: float
    new_individual: bool
    provisional: bool
    sighting: int = 0


@dataclass(frozen=True, slots=True)
class PipelineRow:
    """One ``pipeline`` health point (InfluxDB only: the local store does not keep them)."""

    time_ns: int
    worker: str
    frames_per_s: float | None
    objects_per_s: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    errors: float | None
    lag: float | None
    outbox_backlog: float | None


@dataclass(frozen=True, slots=True)
class NbssPoint:
    """The normalised biomass size spectrum in one ESD class."""

    size_class: SizeClass
    biovolume_mm3: float
    nbss_per_m3: float


@dataclass
class TimeBin:
    """Counts per taxon in one time bin, and those of frames with a volume over that volume."""

    counts: dict[str, int] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    volume_m3: float = 0.0

    def concentration(self, taxon: str) -> float | None:
        """Pooled concentration of a taxon in the bin (ind./m³), None without a volume."""
        if self.volume_m3 <= 0:
            return None
        return self.counted.get(taxon, 0) / self.volume_m3


__all__ = [
    "FishRow",
    "FrameRow",
    "NbssPoint",
    "OtolithRow",
    "PipelineRow",
    "SizeRow",
    "TaxonRow",
    "TimeBin",
]
