"""The demo's simulated cruise: a day long, stations that differ, a bloom the bloom rule
catches there and nowhere else, and an instrument that falls silent."""

from __future__ import annotations

import itertools

import pytest
from pydantic import TypeAdapter

from seawatch.alert_settings import DEFAULT_RULES, Rule
from seawatch.alerts.engine import AlertEngine
from seawatch.contracts.frames import FrameMeta, SourceRef
from seawatch.contracts.objects import Morphometrics
from seawatch.contracts.records import FrameRecord, ObjectRecord
from seawatch.models.cruise_plan import (
    DEMO_PLAN,
    HOUR_NS,
    Bloom,
    CruisePlan,
    PlannedFrame,
    Station,
    composition,
    plan_frames,
)
from seawatch.models.synthetic_stream import (
    FISH_CAMERA,
    INSTRUMENTS,
    OTOLITH_SCANNER,
    cruise_stream,
)

T0 = 1_780_000_200 * 10**9  # a whole hour
VOLUME_ML = {name: volume for name, _, _, _, volume in INSTRUMENTS}
SHARES = {"broken_share": 0.01, "otolith_share": 0.08, "fish_share": 0.08}  # the demo's


@pytest.fixture(scope="module")
def frames() -> list[PlannedFrame]:
    return plan_frames(DEMO_PLAN, 2000, seed=0, **SHARES)


def test_capture_times_span_more_than_a_day_and_strictly_increase(frames):
    offsets = [f.offset_ns for f in frames]
    assert (offsets[-1] - offsets[0]) / HOUR_NS >= 24
    assert all(a < b for a, b in itertools.pairwise(offsets))
    assert all(f.station.start_h <= f.offset_ns / HOUR_NS < f.station.end_h for f in frames)


def test_the_shares_of_tasks_are_exact(frames):
    tasks = [f.task for f in frames]
    assert (tasks.count("broken"), tasks.count("otolith"), tasks.count("fish")) == (20, 160, 160)


def test_stations_differ_in_their_communities(frames):
    coastal, basin = composition(frames, "st-01"), composition(frames, "st-04")
    assert coastal["diatom_chain"] - basin["diatom_chain"] > 0.08
    assert basin["marine_snow"] - coastal["marine_snow"] > 0.08
    assert basin["radiolarian"] > 3 * coastal["radiolarian"]
    mixes = [s.probabilities() for s in DEMO_PLAN.stations]
    for a, b in itertools.combinations(mixes, 2):  # no two stations alike
        assert abs(a - b).max() > 0.035


def test_the_bloom_takes_over_its_station_for_its_window_only(frames):
    bloom = DEMO_PLAN.bloom
    assert bloom is not None
    inside = [f for f in frames if f.bloom]
    assert len(inside) > 100
    for f in inside:
        assert f.station.name == bloom.station
        assert bloom.start_h <= f.offset_ns / HOUR_NS < bloom.end_h
        assert f.volume_scale == pytest.approx(1 - bloom.share)
    taxa = [t for f in inside for t in f.taxa]
    assert taxa.count(bloom.taxon) / len(taxa) > 0.4
    rest = [t for f in frames if f.task == "plankton" and not f.bloom for t in f.taxa]
    assert rest.count(bloom.taxon) / len(rest) < 0.05


def test_the_silent_instrument_sends_nothing_after_its_silence(frames):
    silent = DEMO_PLAN.silent
    assert silent is not None
    sent = [f.offset_ns / HOUR_NS for f in frames if f.instrument == silent.instrument]
    assert len(sent) > 50  # it did send before
    assert max(sent) < silent.after_h
    after = {f.instrument for f in frames if f.offset_ns / HOUR_NS > silent.after_h}
    assert after == {"flowcam-01", "zooscan-02", "uvp6-014", OTOLITH_SCANNER, FISH_CAMERA}


def _record(frame: PlannedFrame) -> FrameRecord:
    """The record the daemon would store for ``frame`` if it classified every object right."""
    meta = FrameMeta(
        frame.instrument,
        "plankton",
        T0 + frame.offset_ns,
        frame.frame_kind,
        "image/png",
        cruise=DEMO_PLAN.cruise,
        station=frame.station.name,
        volume_ml=VOLUME_ML[frame.instrument] * frame.volume_scale,
    )
    objects = tuple(
        ObjectRecord(i, (0, 0, 8, 8), t, 0.9, ((t, 0.9),), Morphometrics(50.0, 9.0, 7.0, 9.0))
        for i, t in enumerate(frame.taxa)
    )
    ref = SourceRef("frames.plankton", 0, frame.index)
    return FrameRecord(meta, ref, "plankton-cnn", "1", objects, 1.0, 1.0, 1.0)


def test_the_default_bloom_rule_fires_on_the_bloom_and_nowhere_else(frames):
    rule = TypeAdapter(Rule).validate_python(
        next(r for r in DEFAULT_RULES if r["kind"] == "plankton_bloom")
    )
    records = [_record(f) for f in frames if f.task == "plankton"]
    alerts = AlertEngine([rule]).evaluate(records)
    bloom = DEMO_PLAN.bloom
    assert alerts, "the bloom rule missed the bloom"
    station = {r.meta.captured_at_ns: r.meta.station for r in records}
    for alert in alerts:
        hours = (alert.at_ns - T0) / HOUR_NS
        assert (alert.subject, station[alert.at_ns]) == (bloom.taxon, bloom.station), alert
        # a window of the rule that holds bloom frames may close a little after the bloom
        assert bloom.start_h <= hours < bloom.end_h + rule.window_s / 3600, alert


def test_cruise_stream_renders_the_planned_frames():
    shares = {"broken_share": 0.05, "otolith_share": 0.1, "fish_share": 0.1}
    n, start = 40, T0
    planned = plan_frames(DEMO_PLAN, n, seed=3, full_share=0.1, **shares)
    messages = list(
        cruise_stream(n, start_ns=start, seed=3, full_share=0.1, full_size=(160, 120), **shares)
    )
    assert len(messages) == n
    fish_at = 0
    for frame, message in zip(planned, messages, strict=True):
        if frame.task == "broken":
            assert message.meta is None and message.broken
            continue
        meta = message.meta
        assert (meta.task, meta.instrument) == (frame.task, frame.instrument)
        if frame.task == "fish":  # a fish's visit: frames 0.4 s apart from its first planned time
            assert fish_at < meta.captured_at_ns <= start + frame.offset_ns + 8 * 400_000_000
            fish_at = meta.captured_at_ns
        else:
            assert meta.captured_at_ns == start + frame.offset_ns
        assert (meta.station, meta.cruise) == (frame.station.name, DEMO_PLAN.cruise)
        if frame.task == "plankton":
            assert (meta.lat, meta.lon) == (frame.station.lat, frame.station.lon)
            assert meta.frame_kind is frame.frame_kind
            expected = VOLUME_ML[frame.instrument] * frame.volume_scale
            assert meta.volume_ml == pytest.approx(expected)


def test_a_plan_refuses_overlapping_stations_and_a_bloom_off_station():
    mix = {"copepod": 1.0}
    a, b = Station("a", 0, 0, 0.0, 2.0, mix), Station("b", 0, 0, 1.0, 2.0, mix)
    with pytest.raises(ValueError, match="overlap"):
        CruisePlan("c", (a, b))
    with pytest.raises(ValueError, match="outside"):
        CruisePlan("c", (a,), bloom=Bloom("a", "copepod", start_h=1.5, hours=1.0))
    with pytest.raises(ValueError, match="unknown taxa"):
        Station("x", 0, 0, 0.0, 1.0, {"kraken": 1.0}).probabilities()
