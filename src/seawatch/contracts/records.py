"""The records the pipeline produces: one per frame, holding one per object.

A :class:`FrameRecord` is keyed by its frame's uid (instrument + capture time), so storing
it twice (a replay after a crash) overwrites instead of double counting.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from seawatch.contracts.frames import FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.quality import FrameQuality

UNKNOWN = "unknown"
FieldValue = float | int | bool | str  # a plug-in task's output, stored as a field


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One classified object: where it is, what it is, and its shape."""

    index: int
    bbox: tuple[int, int, int, int]
    taxon: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    morph: Morphometrics
    crop: str | None = None  # digest of the kept crop (seawatch.contracts.crops)
    wrongness: float | None = None  # the card's fitted ranking score; None: the fallback
    ood: float | None = None  # out-of-distribution score (contracts/ood); None: no detector
    ood_flagged: bool = False  # unknown because of the OOD score (not the softmax threshold)


@dataclass(frozen=True, slots=True)
class OtolithRecord:
    """The anomaly detector's answer for one otolith frame (one specimen).

    ``thumbnail`` and ``heatmap`` are paths relative to the evidence directory, set only for
    flagged specimens (the files are written before the record is stored).
    """

    specimen_id: str | None
    score: float
    anomaly: bool
    threshold: float
    thumbnail: str | None = None
    heatmap: str | None = None


@dataclass(frozen=True, slots=True)
class FishRecord:
    """One fish sighting: who it is (or the new id it was enrolled as) and how sure."""

    individual: str
    similarity: float
    new_individual: bool
    provisional: bool
    view: str | None = None  # digest of the kept view (seawatch.contracts.crops)
    bbox: tuple[int, int, int, int] | None = None  # x, y, w, h in a whole frame (else None)


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """The result for one frame. Timings in milliseconds; latency from broker to record.

    Plankton frames carry ``objects``; otolith frames an ``otolith`` result; fish frames a
    ``fish`` sighting, and a whole tank frame (``tasks.fish.options.whole_frames``) every
    fish it holds in ``sightings`` (``fish`` is its first, kept for readers of one fish a
    frame); a plug-in task's frames their ``fields``. Whatever stores, counts or alerts on
    fish reads :attr:`fish_sightings`. ``model_version`` is the card's release (semantic
    version + weights hash), the model that scored the frame.
    """

    meta: FrameMeta
    ref: SourceRef
    model: str
    model_version: str
    objects: tuple[ObjectRecord, ...]
    decode_ms: float
    infer_ms: float
    latency_ms: float
    otolith: OtolithRecord | None = None
    fish: FishRecord | None = None
    quality: FrameQuality | None = None  # full plankton frames
    fields: tuple[tuple[str, FieldValue], ...] = ()  # a plug-in task's outputs
    sightings: tuple[FishRecord, ...] = ()  # every fish of a whole frame; ``fish`` = first

    def __post_init__(self) -> None:
        if self.sightings and self.fish != self.sightings[0]:
            msg = (
                f"frame {self.meta.uid}: fish must be the first of its sightings "
                f"(got fish={self.fish!r}, sightings[0]={self.sightings[0]!r})"
            )
            raise ValueError(msg)

    @property
    def uid(self) -> str:
        return self.meta.uid

    @property
    def fish_sightings(self) -> tuple[FishRecord, ...]:
        """Every fish sighting of the frame, in frame order (index = position): a whole
        frame's ``sightings``, a crop's one ``fish``, or none."""
        if self.sightings:
            return self.sightings
        return () if self.fish is None else (self.fish,)


@dataclass(frozen=True, slots=True)
class TaxonSummary:
    """Per-frame aggregate for one taxon, as the ``plankton`` measurement stores it.

    Concentration is count / volume imaged (per m³, as EcoTaxa computes it); biovolume is
    the sum of ESD spheres (mm³). Both are None when the frame lacks the needed metadata.
    """

    taxon: str
    count: int
    concentration_per_m3: float | None
    mean_esd_um: float | None
    biovolume_mm3: float | None


def summarise_taxa(record: FrameRecord) -> list[TaxonSummary]:
    """Counts, concentrations and biovolumes per taxon for one frame, sorted by taxon."""
    counts = Counter(obj.taxon for obj in record.objects)
    volume_ml = record.meta.volume_ml
    summaries = []
    for taxon in sorted(counts):
        members = [obj.morph for obj in record.objects if obj.taxon == taxon]
        esds = [m.esd_um for m in members if m.esd_um is not None]
        volumes = [m.biovolume_um3 for m in members if m.biovolume_um3 is not None]
        summaries.append(
            TaxonSummary(
                taxon=taxon,
                count=counts[taxon],
                concentration_per_m3=None
                if volume_ml is None
                else counts[taxon] / (volume_ml * 1e-6),
                mean_esd_um=sum(esds) / len(esds) if esds else None,
                biovolume_mm3=sum(volumes) * 1e-9 if volumes else None,
            )
        )
    return summaries


__all__ = [
    "UNKNOWN",
    "FieldValue",
    "FishRecord",
    "FrameRecord",
    "ObjectRecord",
    "OtolithRecord",
    "TaxonSummary",
    "summarise_taxa",
]
