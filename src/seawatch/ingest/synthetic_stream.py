"""A synthetic instrument stream for the demo, the tests and the benchmarks.

Several instruments on one cruise: flow imagers sending ROI frames (PNG and JPEG) and an
in-situ camera sending full frames (JPEG, with the volume they image), at several
stations, with the skewed taxon frequencies of real plankton samples. Optionally mixes in
broken messages so the dead-letter path is exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.frames import FrameKind, FrameMeta

# (instrument, frame kind, encoding, pixel size µm, volume imaged per frame in mL)
INSTRUMENTS: tuple[tuple[str, FrameKind, str, float, float | None], ...] = (
    ("flowcam-01", FrameKind.ROI, "png", 2.0, 0.02),
    ("ifcb-007", FrameKind.ROI, "png", 0.35, 0.005),
    ("zooscan-02", FrameKind.ROI, "jpeg", 10.6, 0.5),
    ("uvp6-014", FrameKind.FULL, "jpeg", 73.0, 1000.0),
)
STATIONS = ("st-01", "st-02", "st-03", "st-04")
CRUISE = "demo-2026"


@dataclass(frozen=True, slots=True)
class SyntheticMessage:
    """One message to publish: headers (as FrameMeta, or raw for broken ones) and value."""

    key: bytes
    value: bytes
    meta: FrameMeta | None
    raw_headers: list[tuple[str, bytes]] | None = None
    broken: str | None = None


def _encode(image: np.ndarray, encoding: str) -> bytes:
    ext, params = (
        (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if encoding == "png"
        else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    )
    ok, data = cv2.imencode(ext, image, params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {encoding}")
    return data.tobytes()


def synthetic_stream(
    n: int,
    *,
    seed: int = 0,
    full_share: float = 0.05,
    broken_share: float = 0.0,
    start_ns: int,
    full_size: tuple[int, int] = (1280, 960),
    objects_per_full: tuple[int, int] = (15, 45),
) -> Iterator[SyntheticMessage]:
    """Yield ``n`` messages; ``full_share`` of the valid ones are full frames."""
    from seawatch.models.plankton.synthetic import render_full_frame, render_roi, sample_taxa

    rng = np.random.default_rng(seed)
    roi_instruments = [i for i in INSTRUMENTS if i[1] is FrameKind.ROI]
    full_instruments = [i for i in INSTRUMENTS if i[1] is FrameKind.FULL]
    for index in range(n):
        captured = start_ns + index * 1_000_000  # 1 ms apart: unique per instrument
        station = STATIONS[(index * len(STATIONS)) // max(1, n)]
        if broken_share and rng.random() < broken_share:
            yield _broken(rng, index, captured)
            continue
        full = rng.random() < full_share
        name, kind, encoding, pixel_um, volume = (full_instruments if full else roi_instruments)[
            int(rng.integers(len(full_instruments if full else roi_instruments)))
        ]
        dark = name.startswith("uvp") or rng.random() < 0.1
        if full:
            w, h = full_size
            count = int(rng.integers(*objects_per_full))
            image, _ = render_full_frame(rng, width=w, height=h, n_objects=count, dark_field=dark)
        else:
            image = render_roi(sample_taxa(rng, 1)[0], rng, dark_field=dark)
        meta = FrameMeta(
            instrument=name,
            task="plankton",
            captured_at_ns=captured,
            frame_kind=kind,
            content_type="image/png" if encoding == "png" else "image/jpeg",
            cruise=CRUISE,
            station=station,
            sample_id=f"{CRUISE}-{station}",
            lat=round(43.6 + 0.05 * STATIONS.index(station), 4),
            lon=round(7.3 + 0.04 * STATIONS.index(station), 4),
            depth_m=round(float(rng.uniform(5, 200)), 1),
            volume_ml=volume,
            pixel_size_um=pixel_um,
        )
        yield SyntheticMessage(key=name.encode(), value=_encode(image, encoding), meta=meta)


def _broken(rng: np.random.Generator, index: int, captured: int) -> SyntheticMessage:
    """A message a real instrument link produces now and then: each kind of damage once."""
    kinds = ("truncated-jpeg", "no-content-type", "bad-latitude", "not-an-image")
    kind = kinds[index % len(kinds)]
    image = _encode(np.full((64, 64), 200, np.uint8), "jpeg")
    headers = [
        ("content-type", b"image/jpeg"),
        ("instrument", b"flowcam-01"),
        ("captured-at", str(captured).encode()),
        ("frame-kind", b"roi"),
        ("cruise", CRUISE.encode()),
    ]
    value = image
    if kind == "truncated-jpeg":
        value = image[: len(image) // 3]
    elif kind == "no-content-type":
        headers = headers[1:]
    elif kind == "bad-latitude":
        headers.append(("lat", b"123.4"))
    else:
        value = bytes(rng.integers(0, 256, 500, dtype=np.uint8))
    return SyntheticMessage(
        key=b"flowcam-01", value=value, meta=None, raw_headers=headers, broken=kind
    )


__all__ = ["CRUISE", "INSTRUMENTS", "STATIONS", "SyntheticMessage", "synthetic_stream"]
