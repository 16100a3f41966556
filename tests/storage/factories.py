"""Small record factories for storage tests."""

from __future__ import annotations

from seawatch.contracts.frames import FrameKind, FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.records import FishRecord, FrameRecord, ObjectRecord, OtolithRecord


def make_record(
    captured_at_ns: int = 1_780_000_000_000_000_000,
    taxa: tuple[str, ...] = ("copepod", "copepod", "detritus"),
    *,
    volume_ml: float | None = 500.0,
    pixel_size_um: float | None = 10.0,
    station: str = "st 1",
    offset: int = 7,
) -> FrameRecord:
    meta = FrameMeta(
        instrument="uvp6-014",
        task="plankton",
        captured_at_ns=captured_at_ns,
        frame_kind=FrameKind.FULL,
        content_type="image/jpeg",
        cruise="MSM,120",
        station=station,
        volume_ml=volume_ml,
        pixel_size_um=pixel_size_um,
    )
    objects = tuple(
        ObjectRecord(
            index=i,
            bbox=(i * 10, 0, 10, 10),
            taxon=taxon,
            confidence=0.9,
            top_k=((taxon, 0.9), ("other", 0.05)),
            morph=Morphometrics(
                area_px=100.0 * (i + 1),
                major_px=12.0,
                minor_px=10.0,
                feret_px=13.0,
                pixel_size_um=pixel_size_um,
            ),
        )
        for i, taxon in enumerate(taxa)
    )
    return FrameRecord(
        meta=meta,
        ref=SourceRef("frames.plankton", 0, offset),
        model="plankton-cnn",
        model_version="0.1.0",
        objects=objects,
        decode_ms=1.5,
        infer_ms=2.5,
        latency_ms=30.0,
    )


def make_task_record(
    task: str,
    captured_at_ns: int = 1_780_000_000_000_000_000,
    *,
    otolith: OtolithRecord | None = None,
    fish: FishRecord | None = None,
    sightings: tuple[FishRecord, ...] = (),
) -> FrameRecord:
    """An otolith or fish frame record (one specimen, or a whole frame's fish
    ``sightings``; no plankton objects)."""
    instrument = "otolith-scanner-01" if task == "otolith" else "tank-cam-03"
    meta = FrameMeta(
        instrument=instrument,
        task=task,
        captured_at_ns=captured_at_ns,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
        cruise="MSM120",
        station="lab",
        specimen_id="MSM120-oto-1" if task == "otolith" else None,
    )
    return FrameRecord(
        meta=meta,
        ref=SourceRef(f"frames.{task}", 0, 3),
        model=f"{task}-model",
        model_version="1.0.0",
        objects=(),
        decode_ms=1.0,
        infer_ms=4.0,
        latency_ms=20.0,
        otolith=otolith,
        fish=sightings[0] if sightings else fish,
        sightings=sightings,
    )
