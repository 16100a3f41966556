"""A simulated cruise for the demo: where the ship is when, what lives there, what goes wrong.

A :class:`CruisePlan` is a day or more of station work on a transect: each :class:`Station`
has a position, an occupation window (hours after the cruise starts) and its own plankton
community (a taxon mix). One station has a :class:`Bloom` (a taxon takes over the water for
a while, and the instruments sample the patch more often); one instrument falls
:class:`Silent` part way through.
:func:`plan_frames` draws the frames of such a cruise without rendering them (capture time,
station, task, instrument, the objects' taxa), so the tests can check the plan cheaply and
:func:`~seawatch.models.synthetic_stream.cruise_stream` renders the very same frames for the
demo. Nothing travels between stations: frames are captured only while the ship is on station.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from seawatch.contracts.frames import FrameKind
from seawatch.models.plankton.synthetic import TAXA

# The demo's instruments: (instrument, frame kind, encoding, pixel size µm, volume imaged per
# frame in mL); synthetic_stream renders their frames.
INSTRUMENTS: tuple[tuple[str, FrameKind, str, float, float | None], ...] = (
    ("flowcam-01", FrameKind.ROI, "png", 2.0, 0.02),
    ("ifcb-007", FrameKind.ROI, "png", 0.35, 0.005),
    ("zooscan-02", FrameKind.ROI, "jpeg", 10.6, 0.5),
    ("uvp6-014", FrameKind.FULL, "jpeg", 73.0, 1000.0),
)
CRUISE = "demo-2026"
OTOLITH_SCANNER, FISH_CAMERA = "otolith-scanner-01", "tank-cam-03"

HOUR_NS = 3_600 * 10**9
_TASKS = ("broken", "otolith", "fish", "plankton")  # in plan_frames' order of the shares


@dataclass(frozen=True)
class Station:
    """A station: position (decimal degrees), occupation (hours after the start) and the
    relative abundance of each taxon there (normalised when drawn; missing taxa are absent)."""

    name: str
    lat: float
    lon: float
    start_h: float
    hours: float
    mix: Mapping[str, float]

    @property
    def end_h(self) -> float:
        """When the ship leaves the station (hours after the start)."""
        return self.start_h + self.hours

    def probabilities(self) -> np.ndarray:
        """The mix as probabilities in :data:`~seawatch.models.plankton.synthetic.TAXA` order."""
        unknown = set(self.mix) - set(TAXA)
        if unknown:
            raise ValueError(f"station {self.name}: unknown taxa {sorted(unknown)}")
        p = np.array([self.mix.get(t, 0.0) for t in TAXA], dtype=float)
        return p / p.sum()


@dataclass(frozen=True)
class Bloom:
    """``taxon`` makes up ``share`` of the plankton at ``station`` from ``start_h`` for
    ``hours``; meanwhile the instruments sample ``effort`` times as often as elsewhere.

    The bloom adds organisms to the water rather than replacing the others: a frame holds as
    many objects as elsewhere, but they come from less water (:attr:`volume_scale` of the
    usual volume), so every other taxon keeps its concentration.
    """

    station: str
    taxon: str
    start_h: float
    hours: float
    share: float = 0.5
    effort: float = 4.0

    @property
    def end_h(self) -> float:
        """When the bloom patch is left behind (hours after the start)."""
        return self.start_h + self.hours

    @property
    def volume_scale(self) -> float:
        """The volume a frame images in the bloom, as a share of the usual."""
        return 1.0 - self.share

    def covers(self, station: str, hours: float) -> bool:
        """Whether a frame at ``station`` and ``hours`` is inside the bloom."""
        return station == self.station and self.start_h <= hours < self.end_h


@dataclass(frozen=True)
class Silent:
    """``instrument`` sends nothing from ``after_h`` hours on (a pump failed, say)."""

    instrument: str
    after_h: float


@dataclass(frozen=True)
class CruisePlan:
    """Stations in time order (no overlap), an optional bloom and an optional silence."""

    cruise: str
    stations: tuple[Station, ...]
    bloom: Bloom | None = None
    silent: Silent | None = None

    def __post_init__(self) -> None:
        for before, after in zip(self.stations, self.stations[1:], strict=False):
            if after.start_h < before.end_h:
                raise ValueError(f"stations {before.name} and {after.name} overlap")
        if self.bloom is not None:
            station = self.station(self.bloom.station)
            if not station.start_h <= self.bloom.start_h < self.bloom.end_h <= station.end_h:
                raise ValueError(f"the bloom lies outside station {station.name}'s occupation")

    @property
    def hours(self) -> float:
        """The cruise's length: from the first station's start to the last one's end."""
        return self.stations[-1].end_h - self.stations[0].start_h

    def station(self, name: str) -> Station:
        """The station called ``name``."""
        return next(s for s in self.stations if s.name == name)

    def station_at(self, hours: float) -> Station:
        """The station occupied at ``hours`` (the nearest earlier one during a transit)."""
        starts = [s.start_h for s in self.stations]
        return self.stations[max(0, int(np.searchsorted(starts, hours, side="right")) - 1)]

    def in_bloom(self, station: Station, hours: float) -> bool:
        """Whether ``hours`` at ``station`` is inside the bloom."""
        return self.bloom is not None and self.bloom.covers(station.name, hours)

    def probabilities(self, station: Station, hours: float) -> np.ndarray:
        """The taxon mix at ``station`` and ``hours`` (TAXA order), the bloom included."""
        p = station.probabilities()
        if self.bloom is not None and self.bloom.covers(station.name, hours):
            p = (1 - self.bloom.share) * p
            p[TAXA.index(self.bloom.taxon)] += self.bloom.share
        return p

    def sends(self, instrument: str, hours: float) -> bool:
        """Whether ``instrument`` still sends at ``hours``."""
        silent = self.silent
        return silent is None or instrument != silent.instrument or hours < silent.after_h

    def _segments(self) -> np.ndarray:
        """``(start_h, end_h, effort)`` rows covering the station time, bloom split out."""
        rows: list[tuple[float, float, float]] = []
        for s in self.stations:
            b = self.bloom
            if b is not None and b.station == s.name:
                rows += [(s.start_h, b.start_h, 1.0), (b.start_h, b.end_h, b.effort)]
                rows.append((b.end_h, s.end_h, 1.0))
            else:
                rows.append((s.start_h, s.end_h, 1.0))
        return np.array([r for r in rows if r[1] > r[0]], dtype=float)

    def capture_hours(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` increasing capture times (hours after the start), spread over the station
        time by sampling effort: one per quantile slot of the effort, jittered."""
        seg = self._segments()
        weight = (seg[:, 1] - seg[:, 0]) * seg[:, 2]
        cum_end = np.cumsum(weight)
        target = (np.arange(n) + rng.random(n)) / max(n, 1) * cum_end[-1]
        i = np.minimum(np.searchsorted(cum_end, target, side="right"), len(seg) - 1)
        return seg[i, 0] + (target - (cum_end[i] - weight[i])) / seg[i, 2]


@dataclass(frozen=True, slots=True)
class PlannedFrame:
    """One frame of the cruise before it is drawn: ``task`` is plankton, otolith, fish or
    broken (a damaged message); ``taxa`` are the objects a plankton frame shows, in
    ``volume_scale`` times the volume its instrument usually images."""

    index: int
    offset_ns: int
    station: Station
    task: str
    instrument: str
    frame_kind: FrameKind = FrameKind.ROI
    taxa: tuple[str, ...] = ()
    bloom: bool = False
    volume_scale: float = 1.0


def plan_frames(
    plan: CruisePlan,
    n: int,
    *,
    seed: int = 0,
    full_share: float = 0.05,
    broken_share: float = 0.0,
    otolith_share: float = 0.0,
    fish_share: float = 0.0,
    objects_per_full: tuple[int, int] = (15, 30),
) -> list[PlannedFrame]:
    """The ``n`` frames of ``plan`` in capture order (offsets strictly increase).

    Exactly ``broken_share``, ``otolith_share`` and ``fish_share`` of the frames (rounded)
    are damaged messages, otoliths and fish, at random places; of the plankton frames, every
    ``1 / full_share``-th is a full frame (a profiler images at a steady rate).
    Frames come only from instruments that still send (a silent one's share goes to
    plankton frames from the others).
    """
    rng = np.random.default_rng(seed)
    hours = plan.capture_hours(n, rng)
    ns = np.round(hours * HOUR_NS).astype(np.int64)
    ns = np.maximum.accumulate(ns - np.arange(n)) + np.arange(n)  # strictly increasing
    by_kind = {k: [i[0] for i in INSTRUMENTS if i[1] is k] for k in FrameKind}
    special = {"broken": by_kind[FrameKind.ROI][0], "otolith": OTOLITH_SCANNER, "fish": FISH_CAMERA}
    quotas = [round(n * share) for share in (broken_share, otolith_share, fish_share)]
    if sum(quotas) > n:
        raise ValueError(f"the shares ask for {sum(quotas)} of {n} frames")
    tasks = np.repeat(np.array(_TASKS), [*quotas, n - sum(quotas)])
    rng.shuffle(tasks)
    every = round(1 / full_share) if full_share > 0 else 0
    plankton = 0  # plankton frames so far
    frames: list[PlannedFrame] = []
    for index, (h, offset, task) in enumerate(zip(hours.tolist(), ns.tolist(), tasks, strict=True)):
        station = plan.station_at(h)
        if task != "plankton" and plan.sends(special[task], h):
            frames.append(PlannedFrame(index, offset, station, task, special[task]))
            continue
        full = every > 0 and plankton % every == every // 2
        plankton += 1
        kind = FrameKind.FULL if full else FrameKind.ROI
        live = [i for i in by_kind[kind] if plan.sends(i, h)]
        if not live:  # every instrument of that kind is silent: the other kind sends
            kind = FrameKind.ROI if kind is FrameKind.FULL else FrameKind.FULL
            live = [i for i in by_kind[kind] if plan.sends(i, h)]
        name = live[int(rng.integers(len(live)))]
        count = int(rng.integers(*objects_per_full)) if kind is FrameKind.FULL else 1
        p = plan.probabilities(station, h)
        taxa = tuple(TAXA[t] for t in rng.choice(len(TAXA), size=count, p=p))
        bloom = plan.bloom if plan.in_bloom(station, h) else None
        scale = 1.0 if bloom is None else bloom.volume_scale
        frames.append(
            PlannedFrame(index, offset, station, "plankton", name, kind, taxa, bool(bloom), scale)
        )
    return frames


def composition(frames: Sequence[PlannedFrame], station: str) -> dict[str, float]:
    """The share of each taxon among the planned plankton objects at ``station``."""
    taxa = [t for f in frames if f.task == "plankton" and f.station.name == station for t in f.taxa]
    return {t: taxa.count(t) / max(1, len(taxa)) for t in TAXA}


# The taxa of the station table below, in its column order.
_MIX_TAXA = (
    "detritus", "marine_snow", "copepod", "diatom_chain", "appendicularian",
    "radiolarian", "chaetognath", "noctiluca", "bubble", "fiber",
)  # fmt: skip
# A 26-hour transect across the Ligurian Sea, from the Bay of Villefranche to Calvi
# (positions approximate): diatom chains off Villefranche, copepods on the shelf break and
# in the Bay of Calvi, marine snow and radiolarians in the open basin. Neighbouring
# communities differ by less than the bloom rule's factor of 3 in their common taxa, so
# that only the bloom is taken for one.
_STATIONS = (
    # name   lat     lon    start h  det snow cop diat app rad chae noct bub fib
    ("st-01", 43.685, 7.316, 0.0,  (22, 12, 20, 22, 9, 1, 1, 3, 4, 6)),
    ("st-02", 43.600, 7.450, 4.5,  (24, 14, 28, 14, 8, 2, 3, 2, 3, 2)),
    ("st-03", 43.420, 7.870, 9.0,  (28, 18, 22, 12, 6, 3, 3, 3, 3, 2)),
    ("st-04", 43.150, 8.200, 13.5, (24, 26, 16, 8, 4, 9, 6, 2, 3, 2)),
    ("st-05", 42.850, 8.500, 18.0, (26, 18, 26, 9, 5, 5, 5, 2, 2, 2)),
    ("st-06", 42.580, 8.760, 22.5, (20, 12, 31, 11, 11, 1, 2, 3, 4, 5)),
)  # fmt: skip
STATION_HOURS = 3.5  # each station is worked for 3.5 h, then an hour's steaming to the next

#: The demo's cruise: six stations over 26 h; Noctiluca blooms at st-03 for an hour (the
#: instruments sample the patch four times as often) and ifcb-007's pump fails at hour 5.5.
DEMO_PLAN = CruisePlan(
    cruise=CRUISE,
    stations=tuple(
        Station(name, lat, lon, start, STATION_HOURS, dict(zip(_MIX_TAXA, mix, strict=True)))
        for name, lat, lon, start, mix in _STATIONS
    ),
    bloom=Bloom("st-03", "noctiluca", start_h=10.0, hours=1.0, effort=4.0),
    silent=Silent("ifcb-007", after_h=5.5),
)

__all__ = [
    "DEMO_PLAN",
    "HOUR_NS",
    "STATION_HOURS",
    "Bloom",
    "CruisePlan",
    "PlannedFrame",
    "Silent",
    "Station",
    "composition",
    "plan_frames",
]
