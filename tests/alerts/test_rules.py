"""Each alert rule: a case that must fire it and one that must not."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import TypeAdapter

from seawatch.alert_settings import Rule
from seawatch.alerts.engine import AlertEngine
from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.quality import FrameQuality
from seawatch.contracts.records import FishRecord, OtolithRecord
from tests.storage.factories import make_record, make_task_record

T0 = 1_780_000_000_000_000_000
S = 1_000_000_000


def engine(**rule) -> AlertEngine:
    return AlertEngine([TypeAdapter(Rule).validate_python({"name": "r", **rule})])


def otolith(score: float, at: int = T0, specimen: str = "MSM120-oto-1"):
    record = make_task_record(
        "otolith",
        at,
        otolith=OtolithRecord(specimen, score, score > 0.5, 0.5, "oto/t.jpg", "oto/h.jpg"),
    )
    return dataclasses.replace(record, meta=dataclasses.replace(record.meta, specimen_id=specimen))


def test_otolith_anomaly_fires_once_per_flagged_specimen_with_its_evidence():
    rules = engine(kind="otolith_anomaly")
    alerts = rules.evaluate([otolith(0.9), otolith(0.2, T0 + S, "other")])
    assert [a.subject for a in alerts] == ["MSM120-oto-1"]
    alert = alerts[0]
    assert alert.value == 0.9 and alert.threshold == 0.5
    assert alert.evidence.frame_ref == "frames.otolith/0/3"
    assert alert.evidence.thumbnail == "oto/t.jpg"
    assert rules.evaluate([otolith(0.9)]) == []  # a replay of the same frame: no second alert


def test_otolith_below_threshold_does_not_fire():
    assert engine(kind="otolith_anomaly").evaluate([otolith(0.49)]) == []


def fish(new: bool, at: int = T0, individual: str = "zf-new-1"):
    return make_task_record("fish", at, fish=FishRecord(individual, 0.31, new, new))


def test_new_fish_fires_for_an_enrolment_and_not_for_a_known_fish():
    rules = engine(kind="new_individual")
    assert [a.subject for a in rules.evaluate([fish(True)])] == ["zf-new-1"]
    assert rules.evaluate([fish(False, T0 + S, "zf-0-0001")]) == []


def test_a_new_fish_second_in_a_tank_frame_fires_its_own_alert():
    """Every fish of a whole tank frame is judged: two new ones give two alerts (apart in
    their ids, their evidence and their InfluxDB points); a replay gives none."""
    seen = (
        FishRecord("zf-0-0003", 0.9, False, False, bbox=(10, 10, 90, 30)),
        FishRecord("fish-new-aaa", 0.2, True, True, bbox=(200, 40, 90, 30)),
        FishRecord("fish-new-bbb", 0.3, True, True, bbox=(400, 80, 90, 30)),
    )
    record = make_task_record("fish", T0, sightings=seen)
    rules = engine(kind="new_individual")
    alerts = rules.evaluate([record])
    assert [(a.subject, a.evidence.sighting) for a in alerts] == [
        ("fish-new-aaa", 1),
        ("fish-new-bbb", 2),
    ]
    assert len({a.id for a in alerts}) == 2
    assert [a.to_dict()["evidence"]["sighting"] for a in alerts] == [1, 2]
    assert len({a.to_line().split(" ", 1)[0] for a in alerts}) == 2  # two series, no overwrite
    assert rules.evaluate([record]) == []  # the replayed frame
    # a crop's alert is as before: no sighting in its JSON nor in its point's tags
    crop = engine(kind="new_individual").evaluate([fish(True)])[0]
    assert "sighting" not in crop.to_dict()["evidence"] and "sighting=" not in crop.to_line()


def window(start_s: int, copepods: int, frames: int = 5):
    """``frames`` frames of 500 ml spread over one 60 s window, ``copepods`` in all."""
    per = [copepods // frames + (i < copepods % frames) for i in range(frames)]
    return [
        make_record(T0 + (start_s + 10 * i) * S, ("copepod",) * n + ("detritus",), offset=i)
        for i, n in enumerate(per)
    ]


BLOOM = {"kind": "plankton_bloom", "window_s": 60, "factor": 3, "min_count": 20}


def test_bloom_fires_when_a_taxon_exceeds_k_times_its_median_baseline():
    rules = engine(**BLOOM)
    records = [r for w in range(4) for r in window(60 * w, 10)] + window(240, 60)
    alerts = rules.evaluate(records)
    assert [a.subject for a in alerts] == ["copepod"]
    baseline = 10 / (2.5 * 1e-3)  # 10 copepods in 5 x 500 ml, per m³
    assert alerts[0].threshold == pytest.approx(3 * baseline)
    assert alerts[0].value > 3 * baseline


def test_bloom_does_not_fire_below_k_times_or_below_the_minimum_count():
    steady = [r for w in range(5) for r in window(60 * w, 10)] + window(300, 25)  # 2.5x
    assert engine(**BLOOM).evaluate(steady) == []
    small = [r for w in range(4) for r in window(60 * w, 2)] + window(240, 15)  # 7.5x, 15 < 20
    assert engine(**BLOOM).evaluate(small) == []


def test_bloom_waits_for_a_baseline():
    assert engine(**BLOOM).evaluate(window(0, 10) + window(60, 100)) == []


def unknowns(n_frames: int, unknown_per_frame: int, at_s: int = 0):
    taxa = ("unknown",) * unknown_per_frame + ("copepod",) * (10 - unknown_per_frame)
    return [make_record(T0 + (at_s + i) * S, taxa, offset=i) for i in range(n_frames)]


UNKNOWN = {"kind": "unknown_rate", "window_s": 60, "max_share": 0.3, "min_objects": 50}


def test_unknown_rate_fires_over_the_share_once_per_cooldown():
    alerts = engine(**UNKNOWN).evaluate(unknowns(10, 4))
    assert len(alerts) == 1
    assert alerts[0].value == pytest.approx(0.4)


def test_unknown_rate_does_not_fire_at_or_below_the_share_or_on_few_objects():
    assert engine(**UNKNOWN).evaluate(unknowns(10, 3)) == []
    assert engine(**UNKNOWN).evaluate(unknowns(4, 9)) == []  # 40 objects < 50


def test_unknown_rate_counts_only_the_frames_inside_its_window():
    # 60 clean frames (t = 0..59 s), then frames with 4 unknown in 10 (t = 60..119 s). At
    # t = 60 + k the 60 s window holds clean frames k..59 and k + 1 heavy ones: 61 frames, so
    # the share 4(k + 1)/610 first passes 0.3 at k = 45, t = 105 s. Frames that left the
    # window must leave its counts too: kept, the share would stay under 0.3 to the end.
    records = unknowns(60, 0) + unknowns(60, 4, at_s=60)
    alerts = engine(**UNKNOWN, cooldown_s=0).evaluate(records)
    assert alerts and alerts[0].at_ns == T0 + 105 * S
    assert alerts[0].value == pytest.approx(4 * 46 / 610, abs=1e-6)


QUALITY = {"kind": "frame_quality", "window_frames": 10, "min_frames": 10, "max_share": 0.2}


def frames_with(quality: FrameQuality, bad: int, total: int = 10):
    good = FrameQuality(sharpness=80.0, saturated_share=0.0)
    return [
        dataclasses.replace(make_record(T0 + i * S, offset=i), quality=quality if i < bad else good)
        for i in range(total)
    ]


def test_frame_quality_fires_on_blurred_saturated_or_empty_frames():
    blurred = frames_with(FrameQuality(sharpness=1.0, saturated_share=0.0), bad=3)
    [alert] = engine(**QUALITY).evaluate(blurred)
    assert "blurred 3" in alert.message
    saturated = frames_with(FrameQuality(sharpness=80.0, saturated_share=0.3), bad=3)
    assert "saturated 3" in engine(**QUALITY).evaluate(saturated)[0].message
    fine = frames_with(FrameQuality(80.0, 0.0), bad=0)
    empty = [dataclasses.replace(r, objects=()) for r in fine[:3]] + fine[3:]
    assert "empty 3" in engine(**QUALITY).evaluate(empty)[0].message


def test_frame_quality_does_not_fire_at_the_share_or_before_min_frames():
    assert engine(**QUALITY).evaluate(frames_with(FrameQuality(1.0, 0.0), bad=2)) == []
    assert engine(**QUALITY).evaluate(frames_with(FrameQuality(1.0, 0.0), bad=9, total=9)) == []


def test_instrument_silent_fires_once_after_the_limit_and_re_arms_on_a_frame():
    rules = engine(kind="instrument_silent", silent_s=30, cooldown_s=0)
    rules.evaluate([make_record()])
    import time

    now = time.time()
    assert rules.tick(now + 10) == []  # not silent long enough
    [alert] = rules.tick(now + 31)
    assert alert.instrument == "uvp6-014" and alert.value >= 30
    assert rules.tick(now + 60) == []  # one alert per silence
    rules.evaluate([make_record(T0 + S)])
    assert rules.tick(time.time() + 5) == []


def test_alert_json_has_a_schema_version_and_the_line_is_tagged_by_rule():
    [alert] = engine(kind="otolith_anomaly").evaluate([otolith(0.9)])
    body = alert.to_dict()
    assert body["schema_version"] == 1 and body["id"] == alert.id
    assert body["evidence"]["frame_ref"] == "frames.otolith/0/3"
    assert alert.to_line().startswith("alerts,cruise=MSM120,instrument=otolith-scanner-01,rule=r,")


def test_bad_rules_fail_at_start_naming_the_field():
    with pytest.raises(ConfigError, match="factor"):
        load_settings(alerts__rules=[{"name": "b", "kind": "plankton_bloom", "factor": 0.5}])
    with pytest.raises(ConfigError, match="unique"):
        load_settings(alerts__rules=[{"name": "a", "kind": "new_individual"}] * 2)
