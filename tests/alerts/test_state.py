"""Each rule's state per instrument: exported, restored in another engine (another worker, a
restart) and forgotten, with the same alerts as an engine that never stopped."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import TypeAdapter

from seawatch.alert_settings import Rule
from seawatch.alerts.engine import AlertEngine
from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.quality import FrameQuality
from seawatch.contracts.records import OtolithRecord
from tests.storage.factories import make_record, make_task_record

T0 = 1_780_000_000_000_000_000
S = 1_000_000_000
RULES = [
    {"name": "bloom", "kind": "plankton_bloom", "window_s": 60, "factor": 3, "min_count": 20},
    {
        "name": "unknown",
        "kind": "unknown_rate",
        "window_s": 60,
        "min_objects": 50,
        "cooldown_s": 30,
    },
    {"name": "quality", "kind": "frame_quality", "window_frames": 10, "min_frames": 5},
    {"name": "oto", "kind": "otolith_anomaly", "cooldown_s": 3600},
]


def engine(rules=RULES) -> AlertEngine:
    return AlertEngine([TypeAdapter(Rule).validate_python(r) for r in rules])


def stream() -> list:
    """Ten minutes of one camera: steady copepods then a bloom, unknowns rising, every
    other full frame blurred; an otolith flagged twice (a cooldown to carry over)."""
    records = []
    for i in range(600):
        copepods = 2 if i < 480 else 12
        unknown = 0 if i < 300 else 4
        taxa = ("copepod",) * copepods + ("unknown",) * unknown + ("detritus",) * 4
        record = make_record(T0 + i * S, taxa, offset=i)
        quality = FrameQuality(1.0 if i % 2 else 80.0, 0.0)
        records.append(dataclasses.replace(record, quality=quality))
    for at in (100, 400):
        oto = make_task_record(
            "otolith", T0 + at * S, otolith=OtolithRecord("s-1", 0.9, True, 0.5, None, None)
        )
        records.append(oto)
    return sorted(records, key=lambda r: r.meta.captured_at_ns)


def test_state_restored_in_another_engine_fires_what_one_engine_would():
    records = stream()
    whole = [a.id for a in engine().evaluate(records)]
    assert len(whole) >= 4
    first, second = engine(), engine()
    ids = [a.id for a in first.evaluate(records[:430])]
    for instrument in first.instruments():  # through JSON, as a snapshot travels
        second.restore(instrument, json.loads(json.dumps(first.export(instrument))), 0.0)
    ids += [a.id for a in second.evaluate(records[430:])]
    assert ids == whole
    kinds = {a.kind for a in engine().evaluate(records)}
    assert kinds == {"plankton_bloom", "unknown_rate", "frame_quality", "otolith_anomaly"}


def test_without_the_state_the_second_engine_fires_otherwise():
    records = stream()
    whole = [a.id for a in engine().evaluate(records)]
    first, second = engine(), engine()
    ids = [a.id for a in first.evaluate(records[:430])] + [
        a.id for a in second.evaluate(records[430:])
    ]
    assert ids != whole  # the test above can fail: restoring nothing loses baselines


def test_a_rule_whose_settings_changed_starts_afresh_and_forget_drops_everything():
    first = engine()
    first.evaluate(stream()[:200])
    saved = {i: first.export(i) for i in first.instruments()}
    changed = [dict(r, window_frames=20) if r["name"] == "quality" else r for r in RULES]
    second = engine(changed)
    for instrument, data in saved.items():
        second.restore(instrument, data, 0.0)
    by_name = {e.rule.name: e for e in second.evaluators}
    assert by_name["quality"].instruments() == set()
    assert by_name["bloom"].instruments() == {"uvp6-014"}
    for instrument in list(second.instruments()):
        second.forget(instrument)
    assert second.instruments() == set()


SILENT = [{"name": "silent", "kind": "instrument_silent", "silent_s": 30, "grace_s": 20}]


def test_a_restored_silent_instrument_waits_its_grace_and_keeps_the_alert_id():
    original = engine(SILENT)
    original.evaluate([make_record()])
    [heard] = original.evaluators[0]._heard.values()
    now = heard.heard_ns / S
    data = json.loads(json.dumps(original.export("uvp6-014")))  # a snapshot, then a crash
    [expected] = original.tick(now + 35)
    taken_over = engine(SILENT)
    taken_over.restore("uvp6-014", data, now + 34)
    assert taken_over.tick(now + 40) == []  # within grace: its frames may be on their way
    [again] = taken_over.tick(now + 55)
    assert again.id == expected.id and again.at_ns == heard.heard_ns + 30 * S
    assert taken_over.tick(now + 90) == []  # once per silence


def test_a_silent_instrument_that_changes_cruise_is_one_instrument():
    rules = engine(SILENT)
    record = make_record()
    moved = dataclasses.replace(record, meta=dataclasses.replace(record.meta, cruise="next"))
    rules.evaluate([record, moved])
    [heard] = rules.evaluators[0]._heard.values()
    alerts = rules.tick(heard.heard_ns / S + 31)
    assert [a.cruise for a in alerts] == ["next"]


def test_a_state_topic_that_is_the_alerts_topic_fails_at_start_naming_the_fix():
    with pytest.raises(ConfigError, match=r"state_topic: alerts\.state"):
        load_settings(alerts__topic="alerts", alerts__state_topic="alerts")
    with pytest.raises(ConfigError, match="grace_s"):
        load_settings(alerts__rules=[{"name": "s", "kind": "instrument_silent", "grace_s": -1}])
