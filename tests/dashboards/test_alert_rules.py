"""The Grafana alert rules that mirror the daemon's: their structure, the daemon's thresholds,
the contact point, and (against a real InfluxDB 1.x) that their queries and expressions fire
for exactly the instruments that break each rule."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import pytest

from seawatch.config import Settings, load_settings
from seawatch.dashboards import alert_rules as ar
from seawatch.dashboards.influxql import InfluxQLClient
from tests.servers import influxdb1

HOOK = {"url": "https://ops.example/hook", "headers": {"Authorization": "Bearer s3cret"}}


def _settings(**overrides: Any) -> Settings:
    return load_settings(storage__influx__url="http://influx:8086", **overrides)


def _rules_by_title(settings: Settings) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in ar.alert_rules(settings)}


def test_one_rule_per_daemon_rule_with_stable_uid_and_labels() -> None:
    settings = _settings()
    rules = ar.alert_rules(settings)
    assert [r["title"] for r in rules] == [r.name for r in settings.alerts.rules]
    assert len({r["uid"] for r in rules}) == len(rules)
    assert rules == ar.alert_rules(_settings())  # stable between runs
    for rule, daemon in zip(rules, settings.alerts.rules, strict=True):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rule["uid"])
        assert rule["labels"]["severity"] == daemon.severity
        assert rule["folderUID"] == "seawatch" and rule["ruleGroup"] == ar.RULE_GROUP
        assert "notification_settings" not in rule  # no webhooks configured


def test_every_reference_resolves() -> None:
    for rule in ar.alert_rules(_settings()):
        refs = [q["refId"] for q in rule["data"]]
        assert rule["condition"] == refs[-1]
        for i, query in enumerate(rule["data"]):
            model = query["model"]
            if query["datasourceUid"] == ar.EXPRESSION_UID:
                used = re.findall(r"\$([A-Z])", model["expression"]) or [model["expression"]]
                assert set(used) <= set(refs[:i]), (rule["title"], model)
                assert model["type"] in {"reduce", "math", "threshold"}
            else:
                assert query["datasourceUid"] == "seawatch-influxdb"
                assert "$timeFilter" in model["query"] and model["rawQuery"] is True
                assert query["relativeTimeRange"]["from"] >= 60


def test_thresholds_come_from_the_daemon_rules() -> None:
    rules = [
        {
            "name": "unk",
            "kind": "unknown_rate",
            "max_share": 0.42,
            "min_objects": 77,
            "window_s": 123,
        },
        {
            "name": "q",
            "kind": "frame_quality",
            "max_share": 0.15,
            "min_frames": 9,
            "min_sharpness": 7.5,
            "max_saturated_share": 0.02,
        },
        {"name": "quiet", "kind": "instrument_silent", "silent_s": 120},
        {"name": "bloom.v2", "kind": "plankton_bloom", "severity": "critical"},
    ]
    built = _rules_by_title(_settings(alerts__rules=rules))

    unk = built["unk"]["data"]
    assert unk[-1]["model"]["expression"] == "$C / $D > 0.42 && $D >= 77"
    assert {q["relativeTimeRange"]["from"] for q in unk[:2]} == {123}
    quality = built["q"]["data"]
    assert '"sharpness" < 7.5' in quality[0]["model"]["query"]
    assert '"saturated_share" > 0.02' in quality[0]["model"]["query"]
    assert quality[-1]["model"]["expression"] == "$C / $D > 0.15 && $D >= 9"
    quiet = built["quiet"]
    assert "GROUP BY time(120s)" in quiet["data"][0]["model"]["query"]
    assert quiet["for"] == "2m" and quiet["noDataState"] == "Alerting"
    bloom = built["bloom.v2"]
    assert "\"rule\" = 'bloom.v2'" in bloom["data"][0]["model"]["query"]
    assert bloom["labels"]["severity"] == "critical"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", bloom["uid"])


def test_rule_uids_are_valid_and_distinct() -> None:
    names = ["a", "a.b", "a-b", "x" * 80, "x" * 81]
    uids = [ar.rule_uid(n) for n in names]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", u) for u in uids)
    assert ar.rule_uid("otolith-anomaly") == "seawatch-otolith-anomaly"


def test_durations() -> None:
    assert [ar.format_duration(s) for s in (0, 59, 60, 90, 3600, 5400)] == [
        "0s",
        "59s",
        "1m",
        "1m30s",
        "1h",
        "1h30m",
    ]
    assert [ar.duration_s(t) for t in ("30s", "1m", "1h30m", "2d")] == [30, 60, 5400, 172800]
    with pytest.raises(ValueError, match="not a duration"):
        ar.duration_s("5 minutes")


def test_contact_point_mirrors_the_webhooks() -> None:
    other = {"url": "https://b.example/x", "headers": {"X-Api-Key": "k"}}
    settings = _settings(alerts__webhooks=[HOOK, other, HOOK])
    points = ar.contact_points(settings)
    assert [p["settings"]["url"] for p in points] == [HOOK["url"], other["url"]]
    assert {p["name"] for p in points} == {ar.CONTACT_POINT}
    assert points[0]["settings"]["authorization_scheme"] == "Bearer"
    assert points[0]["settings"]["authorization_credentials"] == "s3cret"
    assert "authorization_scheme" not in points[1]["settings"]
    assert ar.unmirrored_headers(settings) == ["X-Api-Key"]
    routed = ar.alert_rules(settings)
    assert all(r["notification_settings"] == {"receiver": ar.CONTACT_POINT} for r in routed)


def test_no_rules_or_contact_point_when_alerts_are_off() -> None:
    settings = _settings(alerts__enabled=False, alerts__webhooks=[HOOK])
    assert ar.alert_rules(settings) == [] and ar.contact_points(settings) == []


# -- the rules evaluated against a real InfluxDB 1.x, like Grafana evaluates them ---------


def _evaluate(client: InfluxQLClient, rule: dict[str, Any], now_ms: int) -> set[str]:
    """Instruments (or instrument/taxon) the rule fires for: queries run with Grafana's
    ``$timeFilter``, then reduce (last) / math / threshold per label set."""
    values: dict[str, dict[tuple, float]] = {}
    for q in rule["data"]:
        model, ref = q["model"], q["refId"]
        if q["datasourceUid"] != ar.EXPRESSION_UID:
            start = now_ms - q["relativeTimeRange"]["from"] * 1000
            text = model["query"].replace(
                "$timeFilter", f"time >= {start}ms and time <= {now_ms}ms"
            )
            series = client.query(text)
            values[ref] = {
                tuple(sorted(s.tags.items())): s.column(s.columns[1])[-1] for s in series
            }
        elif model["type"] == "reduce":
            values[ref] = dict(values[model["expression"]])
        elif model["type"] == "threshold":
            ev = model["conditions"][0]["evaluator"]
            op = {"gt": float.__gt__, "lt": float.__lt__}[ev["type"]]
            values[ref] = {
                k: float(op(float(v), float(ev["params"][0])))
                for k, v in values[model["expression"]].items()
            }
        else:
            refs = re.findall(r"\$([A-Z])", model["expression"])
            keys = set.intersection(*(set(values[r]) for r in refs))
            values[ref] = {k: _math(model["expression"], values, k) for k in keys}
    return {"/".join(v for _, v in key) for key, v in values[rule["condition"]].items() if v}


def _math(expression: str, values: dict[str, dict[tuple, float]], key: tuple) -> float:
    text = re.sub(r"\$([A-Z])", lambda m: repr(float(values[m.group(1)][key])), expression)
    try:
        return float(eval(text.replace("&&", " and ")))  # a test-only, trusted expression
    except ZeroDivisionError:
        return math.nan


@pytest.mark.integration
def test_rules_fire_for_exactly_the_breaking_instruments(tmp_path: Path) -> None:
    rules = [
        {"name": "oto", "kind": "otolith_anomaly"},
        {"name": "fish", "kind": "new_individual"},
        {"name": "unk", "kind": "unknown_rate", "max_share": 0.3, "min_objects": 50},
        {"name": "quality", "kind": "frame_quality", "min_frames": 5},
        {"name": "silent", "kind": "instrument_silent", "silent_s": 300},
        {"name": "bloom", "kind": "plankton_bloom"},
    ]
    built = _rules_by_title(_settings(alerts__rules=rules))
    now_ns = time.time_ns()
    lines = []
    for i in range(10):
        at = now_ns - i * 10**9
        # cam-a: half unknown, blurred; cam-b: few unknown, sharp
        lines.append(
            f"frames,instrument=cam-a,task=plankton objects=10i,unknown_objects=5i,"
            f"sharpness=2.0,saturated_share=0.0 {at}"
        )
        lines.append(
            f"frames,instrument=cam-b,task=plankton objects=10i,unknown_objects=1i,"
            f"sharpness=50.0,saturated_share=0.01 {at}"
        )
    lines.append(
        f"frames,instrument=cam-c,task=plankton objects=3i,unknown_objects=0i "
        f"{now_ns - 1800 * 10**9}"
    )
    tank = now_ns - 10**10
    lines += [
        f"otolith,instrument=oto-1 flagged=1i,score=2.5 {now_ns - 10**10}",
        f"otolith,instrument=oto-2 flagged=0i,score=0.5 {now_ns - 10**10}",
        f'fish,instrument=fish-1 individual="f-9",new_individual=true {now_ns - 10**10}',
        f'fish,instrument=fish-2 individual="f-1",new_individual=false {now_ns - 10**10}',
        # a whole tank frame: a known fish first, a new one second (its own tagged point)
        f'fish,instrument=fish-3 individual="f-2",new_individual=false {tank}',
        f'fish,instrument=fish-3,sighting=1 individual="f-10",new_individual=true {tank}',
        f"alerts,rule=bloom,instrument=cam-a,taxon=copepod value=90.0 {now_ns - 10**10}",
        f"alerts,rule=unk,instrument=cam-b value=0.5 {now_ns - 10**10}",
    ]
    with influxdb1(tmp_path / "influx") as server:
        client = InfluxQLClient(server.url, "seawatch")
        client.execute("CREATE DATABASE seawatch")
        server.write("seawatch", lines)
        now_ms = now_ns // 10**6 + 1  # evaluated right away, like Grafana every interval
        fired = {name: _evaluate(client, rule, now_ms) for name, rule in built.items()}

    assert fired == {
        "oto": {"oto-1"},
        "fish": {"fish-1", "fish-3"},
        "unk": {"cam-a"},
        "quality": {"cam-a"},
        "silent": {"cam-c"},
        "bloom": {"cam-a/copepod"},
    }
