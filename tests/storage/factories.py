"""Small record factories for storage tests."""

from __future__ import annotations

from seawatch.frames import FrameKind, FrameMeta, SourceRef
from seawatch.ingest.objects import Morphometrics
from seawatch.storage.records import FrameRecord, ObjectRecord


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
