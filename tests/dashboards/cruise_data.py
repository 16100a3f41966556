"""A seeded cruise's worth of records (plankton, otolith, fish) and pipeline points, and the
numbers each dashboard panel must show, computed here in plain Python from the records,
independently of InfluxQL.

Two cruises, two plankton instruments, stations whose names need regex escaping
(``st/2``), frames with and without volume and pixel size, empty frames, flagged and
normal otoliths, known and new fish, two daemon workers.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seawatch.contracts.frames import FrameKind, FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.points import line
from seawatch.contracts.records import (
    UNKNOWN,
    FishRecord,
    FrameRecord,
    ObjectRecord,
    OtolithRecord,
)
from seawatch.storage.line_protocol import records_to_lines
from seawatch.storage.size_spectrum import SIZE_CLASSES, class_of

if TYPE_CHECKING:
    from tests.dashboards.review_data import ReviewProgress

T0 = 1_790_000_400 * 10**9  # a multiple of 10 minutes, so buckets line up with the span
SPAN_NS = 2 * 3600 * 10**9
INTERVAL_NS = 600 * 10**9
TAXA = ("copepod", "chaetognath", "diatom-chain", UNKNOWN)
PLANKTON_INSTRUMENTS = ("uvp6-014", "flowcam-2")
STATIONS = ("st 1", "st/2", "st.3")
WORKERS = ("seawatch@ship-a", "seawatch@ship-b")


@dataclass(frozen=True)
class PipelinePoint:
    worker: str
    time_ns: int
    fields: dict[str, float | int]


@dataclass(frozen=True)
class Cruise:
    """The records and pipeline points of the test, and their line protocol (with the
    review station's points when ``review`` is set: ``review_data.make_review``)."""

    plankton: list[FrameRecord]
    otolith: list[FrameRecord]
    fish: list[FrameRecord]
    pipeline: list[PipelinePoint]
    review: ReviewProgress | None = None

    def lines(self) -> list[str]:
        out = records_to_lines(self.plankton + self.otolith + self.fish)
        for p in self.pipeline:
            out.append(line("pipeline", {"worker": p.worker, "stage": "all"}, p.fields, p.time_ns))
        return out + (self.review.lines if self.review else [])


def _meta(task: str, instrument: str, t: int, **extra) -> FrameMeta:
    kind = FrameKind.FULL if task == "plankton" else FrameKind.ROI
    return FrameMeta(instrument, task, t, kind, "image/jpeg", **extra)


def _record(meta: FrameMeta, objects=(), **extra) -> FrameRecord:
    rng = random.Random(meta.captured_at_ns)
    return FrameRecord(
        meta=meta,
        ref=SourceRef(f"frames.{meta.task}", 0, 0),
        model=f"{meta.task}-model",
        model_version="1.0.0",
        objects=tuple(objects),
        decode_ms=1.0,
        infer_ms=2.0,
        latency_ms=round(rng.uniform(5, 400), 3),
        **extra,
    )


def make_cruise(seed: int = 7) -> Cruise:
    """The seeded test cruise."""
    rng = random.Random(seed)
    times = iter(rng.sample(range(T0, T0 + SPAN_NS, 10**9), 400))
    plankton = []
    for _ in range(90):
        pixel = rng.choice((10.0, 10.0, 24.0, None))
        meta = _meta(
            "plankton",
            rng.choice(PLANKTON_INSTRUMENTS),
            next(times),
            cruise=rng.choice(("MSM120", "MSM120", "PS140")),
            station=rng.choice(STATIONS),
            volume_ml=rng.choice((250.0, 500.0, 1000.0, None)),
            pixel_size_um=pixel,
        )
        objects = []
        for i in range(rng.choice((0, 1, 3, 6, 9))):
            area = rng.uniform(4, 4000)
            morph = Morphometrics(area, 10.0, 8.0, 11.0, pixel_size_um=pixel)
            taxon = rng.choice(TAXA)
            objects.append(ObjectRecord(i, (0, 0, 5, 5), taxon, 0.8, ((taxon, 0.8),), morph))
        plankton.append(_record(meta, objects))
    otolith = []
    for k in range(24):
        score = round(rng.uniform(0, 1), 4)
        meta = _meta(
            "otolith",
            rng.choice(("scanner-01", "scanner-02")),
            next(times),
            cruise="MSM120",
            specimen_id=f"MSM120-{k:03d}",
        )
        flagged = score > 0.6
        paths = (f"otolith/{k}.jpg", f"otolith/{k}_heatmap.jpg") if flagged else (None, None)
        otolith.append(
            _record(meta, otolith=OtolithRecord(meta.specimen_id, score, flagged, 0.6, *paths))
        )
    fish = []
    for k in range(30):
        new = k % 9 == 4
        individual = (
            f"fish-new-{k:04d}" if new else rng.choice(("F-001", "F-002", "F-003", "F-004"))
        )
        similarity = round(rng.uniform(0.1, 0.5) if new else rng.uniform(0.6, 0.99), 4)
        camera, cruise = rng.choice(("tank-cam-03", "tank-cam-04")), rng.choice(("MSM120", "PS140"))
        meta = _meta("fish", camera, next(times), cruise=cruise)
        fish.append(_record(meta, fish=FishRecord(individual, similarity, new, new)))
    for k in range(4):  # whole tank frames: three fish each, a new one second in two of them
        camera = ("tank-cam-03", "tank-cam-04")[k % 2]
        meta = _meta("fish", camera, next(times), cruise="MSM120")
        seen = (("F-001", 0.91, False), (f"fish-new-tank-{k}", 0.31, True), ("F-003", 0.77, False))
        sightings = tuple(
            FishRecord(name, sim, new and k < 2, new and k < 2, bbox=(100 * i, 40, 90, 30))
            for i, (name, sim, new) in enumerate(seen)
        )
        fish.append(_record(meta, fish=sightings[0], sightings=sightings))
    pipeline = []
    for worker in WORKERS:
        for k in range(24):
            fields = {
                "frames_per_s": round(rng.uniform(5, 50), 3),
                "objects_per_s": round(rng.uniform(50, 500), 3),
                "latency_p50_ms": round(rng.uniform(10, 50), 3),
                "latency_p99_ms": round(rng.uniform(60, 300), 3),
                "errors": rng.choice((0, 0, 1, 3)),
                "lag": rng.randrange(0, 2000),
                "outbox_backlog": rng.randrange(0, 5000),
            }
            pipeline.append(PipelinePoint(worker, T0 + k * 300 * 10**9 + 17 * 10**9, fields))
    return Cruise(plankton, otolith, fish, pipeline)


# --- expectations -------------------------------------------------------------------------

Selection = dict[str, tuple[str, ...] | None]  # tag -> allowed values (None: All)


def selected(meta_or_tags: dict[str, str], selection: Selection) -> bool:
    """Whether a record's tags pass the dashboard's variable selection (tags the record
    does not have, such as the taxon of a frame, are not its to pass)."""
    return all(
        allowed is None or meta_or_tags[tag] in allowed
        for tag, allowed in selection.items()
        if tag in meta_or_tags
    )


def bucket(t: int) -> int:
    return t - t % INTERVAL_NS


def plankton_tags(r: FrameRecord) -> dict[str, str]:
    m = r.meta
    return {"cruise": m.cruise, "instrument": m.instrument, "station": m.station}


def frames(cruise: Cruise, selection: Selection) -> list[FrameRecord]:
    """Plankton frames passing the cruise/instrument/station selection."""
    return [r for r in cruise.plankton if selected(plankton_tags(r), selection)]


def taxa_ok(selection: Selection) -> Callable[[str], bool]:
    allowed = selection.get("taxon")
    return lambda taxon: allowed is None or taxon in allowed


def counts_per_taxon(cruise: Cruise, selection: Selection, *, with_volume: bool, by) -> dict:
    """{(key(frame), taxon): objects}; ``by`` maps a frame to the grouping key."""
    out: dict = defaultdict(int)
    keep = taxa_ok(selection)
    for r in frames(cruise, selection):
        if with_volume and r.meta.volume_ml is None:
            continue
        for o in r.objects:
            if keep(o.taxon):
                out[(by(r), o.taxon)] += 1
    return dict(out)


def volume_m3(cruise: Cruise, selection: Selection, *, by) -> dict:
    out: dict = defaultdict(float)
    for r in frames(cruise, selection):
        if r.meta.volume_ml is not None:
            out[by(r)] += r.meta.volume_ml * 1e-6
    return dict(out)


def nbss(cruise: Cruise, selection: Selection) -> dict[str, float]:
    """{class label: NBSS} over frames with volume and pixel size (non-empty classes)."""
    sized = [
        r
        for r in frames(cruise, selection)
        if r.meta.volume_ml is not None and r.meta.pixel_size_um is not None
    ]
    volume = sum(r.meta.volume_ml for r in sized) * 1e-6
    biovolume: dict[str, float] = defaultdict(float)
    for r in sized:
        for o in r.objects:
            size_class = class_of(o.morph.esd_um)
            if size_class is not None:
                biovolume[size_class.label] += math.pi / 6 * o.morph.esd_um**3 * 1e-9
    widths = {c.label: c.width_mm3 for c in SIZE_CLASSES}
    return {label: bv / volume / widths[label] for label, bv in biovolume.items()}


def percentile(values: list[float], p: float) -> float:
    """InfluxQL's nearest-rank percentile."""
    ordered = sorted(values)
    i = math.floor(len(ordered) * p / 100.0 + 0.5) - 1
    return ordered[min(max(i, 0), len(ordered) - 1)]


__all__ = ["SPAN_NS", "T0", "Cruise", "make_cruise"]
