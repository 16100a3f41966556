"""A synthetic instrument stream for the demo, the tests and the benchmarks.

Several instruments on one cruise: flow imagers sending ROI frames (PNG and JPEG) and an
in-situ camera sending full frames (JPEG, with the volume they image), at several
stations, with the skewed taxon frequencies of real plankton samples; optionally an
otolith scanner in the fish lab (PNG photographs of sagittae, some anomalous, each with its
specimen id) and a camera over a zebrafish tank (JPEG side views of a few individuals, each
seen many times). Optionally mixes in broken messages so the dead-letter path is exercised.

:func:`synthetic_stream` packs its frames 1 ms apart; :func:`cruise_stream` spreads them over
a simulated cruise (:mod:`seawatch.models.cruise_plan`): a day of stations with their own
communities, a bloom and an instrument that falls silent.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from seawatch.contracts.frames import FrameKind, FrameMeta
from seawatch.ingest.publish import FrameMessage
from seawatch.models.cruise_plan import (
    CRUISE,
    DEMO_PLAN,
    FISH_CAMERA,
    INSTRUMENTS,
    OTOLITH_SCANNER,
    CruisePlan,
    plan_frames,
)

STATIONS = ("st-01", "st-02", "st-03", "st-04")
OTOLITH_ANOMALY_SHARE = 0.2  # share of the demo's otoliths with a defect
# The demo tank: five fish the committed model's gallery knows (make_individuals(n, 0) indices
# 0-4) and two strangers (indices 250-251 are in no gallery and were never trained on).
FISH_KNOWN, FISH_STRANGERS = (0, 1, 2, 3, 4), (250, 251)
FISH_VISIT_TICK_NS = 400_000_000  # frames of one fish's visit to the tank camera


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
    otolith_share: float = 0.0,
    fish_share: float = 0.0,
) -> Iterator[FrameMessage]:
    """Yield ``n`` messages; ``full_share`` of the valid plankton ones are full frames.

    ``otolith_share`` and ``fish_share`` of the valid messages are otolith and fish frames.
    """
    from seawatch.models.plankton.synthetic import render_full_frame, render_roi, sample_taxa

    rng = np.random.default_rng(seed)
    fish = _fish_renderer(rng) if fish_share > 0 else None
    roi_instruments = [i for i in INSTRUMENTS if i[1] is FrameKind.ROI]
    full_instruments = [i for i in INSTRUMENTS if i[1] is FrameKind.FULL]
    for index in range(n):
        captured = start_ns + index * 1_000_000  # 1 ms apart: unique per instrument
        station = STATIONS[(index * len(STATIONS)) // max(1, n)]
        if broken_share and rng.random() < broken_share:
            yield _broken(rng, index, captured)
            continue
        pick = rng.random()
        if pick < otolith_share:
            yield _otolith(rng, index, captured, station)
            continue
        if fish is not None and pick < otolith_share + fish_share:
            yield fish(index, captured, station)
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
        yield FrameMessage(key=name.encode(), value=_encode(image, encoding), meta=meta)


def cruise_stream(
    n: int,
    *,
    start_ns: int,
    plan: CruisePlan | None = None,
    seed: int = 0,
    full_share: float = 0.05,
    broken_share: float = 0.0,
    full_size: tuple[int, int] = (1280, 960),
    objects_per_full: tuple[int, int] = (15, 30),
    otolith_share: float = 0.0,
    fish_share: float = 0.0,
) -> Iterator[FrameMessage]:
    """Yield the ``n`` frames of a simulated cruise (default: the demo's
    :data:`~seawatch.models.cruise_plan.DEMO_PLAN`), captured from ``start_ns`` on.

    The frames are those of :func:`~seawatch.models.cruise_plan.plan_frames` with the same
    arguments, in capture order: station positions and communities, the bloom, the silent
    instrument. The shares mean what they mean for :func:`synthetic_stream`.
    """
    from seawatch.models.plankton.synthetic import render_full_frame, render_roi

    plan = plan or DEMO_PLAN
    planned = plan_frames(
        plan,
        n,
        seed=seed,
        full_share=full_share,
        broken_share=broken_share,
        otolith_share=otolith_share,
        fish_share=fish_share,
        objects_per_full=objects_per_full,
    )
    rng = np.random.default_rng([seed, 1])  # the images' randomness; the plan has its own
    fish = _fish_renderer(rng) if fish_share > 0 else None
    specs = {i[0]: i for i in INSTRUMENTS}
    for frame in planned:
        captured, station = start_ns + frame.offset_ns, frame.station
        if frame.task == "broken":
            yield _broken(rng, frame.index, captured)
            continue
        if frame.task == "otolith":
            yield _otolith(rng, frame.index, captured, station.name, plan.cruise)
            continue
        if frame.task == "fish" and fish is not None:
            yield fish(frame.index, captured, station.name, plan.cruise)
            continue
        name, kind, encoding, pixel_um, volume = specs[frame.instrument]
        dark = name.startswith("uvp") or rng.random() < 0.1
        if kind is FrameKind.FULL:
            w, h = full_size
            image, _ = render_full_frame(rng, width=w, height=h, dark_field=dark, taxa=frame.taxa)
        else:
            image = render_roi(frame.taxa[0], rng, dark_field=dark)
        meta = FrameMeta(
            instrument=name,
            task="plankton",
            captured_at_ns=captured,
            frame_kind=kind,
            content_type="image/png" if encoding == "png" else "image/jpeg",
            cruise=plan.cruise,
            station=station.name,
            sample_id=f"{plan.cruise}-{station.name}",
            lat=station.lat,
            lon=station.lon,
            depth_m=round(float(rng.uniform(5, 200)), 1),
            volume_ml=None if volume is None else round(volume * frame.volume_scale, 6),
            pixel_size_um=pixel_um,
        )
        yield FrameMessage(name.encode(), _encode(image, encoding), meta)


def _otolith(
    rng: np.random.Generator, index: int, captured: int, station: str, cruise: str = CRUISE
) -> FrameMessage:
    """A sagitta photographed in the fish lab; a fifth of them carry a defect."""
    from seawatch.models.otolith.synthetic import ANOMALY_TYPES, render_otolith

    anomaly = None
    if rng.random() < OTOLITH_ANOMALY_SHARE:
        anomaly = ANOMALY_TYPES[int(rng.integers(len(ANOMALY_TYPES)))]
    image = render_otolith(rng, anomaly=anomaly)
    meta = FrameMeta(
        instrument=OTOLITH_SCANNER,
        task="otolith",
        captured_at_ns=captured,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
        cruise=cruise,
        station=station,
        specimen_id=f"{cruise}-oto-{index:05d}",
    )
    return FrameMessage(
        OTOLITH_SCANNER.encode(), _encode(image, "png"), meta, truth=anomaly or "normal"
    )


def _fish_renderer(rng: np.random.Generator):
    """Side views of the demo tank's seven fish, each seen again and again: a fish passes the
    camera in a visit of 1-8 frames 0.4 s apart (from the frame's planned time on)."""
    from seawatch.models.fish.synthetic import make_individual, render_fish

    individuals = [make_individual(i, 0) for i in (*FISH_KNOWN, *FISH_STRANGERS)]
    visit = {"left": 0, "fish": individuals[0], "at": 0}

    def render(index: int, captured: int, station: str, cruise: str = CRUISE) -> FrameMessage:
        if visit["left"] == 0:
            visit["fish"] = individuals[int(rng.integers(len(individuals)))]
            visit["left"] = int(min(8, rng.geometric(0.25)))
            visit["at"] = max(captured, visit["at"] + FISH_VISIT_TICK_NS)
        else:
            visit["at"] += FISH_VISIT_TICK_NS
        visit["left"] -= 1
        individual = visit["fish"]
        meta = FrameMeta(
            instrument=FISH_CAMERA,
            task="fish",
            captured_at_ns=visit["at"],
            frame_kind=FrameKind.ROI,
            content_type="image/jpeg",
            cruise=cruise,
            station=station,
        )
        image = _encode(render_fish(individual, rng), "jpeg")
        return FrameMessage(FISH_CAMERA.encode(), image, meta, truth=individual.name)

    return render


def _broken(rng: np.random.Generator, index: int, captured: int) -> FrameMessage:
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
    return FrameMessage(key=b"flowcam-01", value=value, meta=None, raw_headers=headers, broken=kind)


__all__ = ["CRUISE", "INSTRUMENTS", "STATIONS", "cruise_stream", "synthetic_stream"]
