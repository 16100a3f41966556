"""The generated dashboard JSON passes the structural checks, and each check catches the
fault it is there for."""

from __future__ import annotations

import copy
import json

import pytest

from seawatch.config import load_settings
from seawatch.dashboards.catalog import build_dashboards
from seawatch.dashboards.checks import DashboardError, check_dashboard, problems
from seawatch.dashboards.grafana_model import SCHEMA_VERSION, Panel, Query
from seawatch.dashboards.interpolate import format_value, references, render

DS = "seawatch-influxdb"


@pytest.fixture(scope="module")
def models() -> list[dict]:
    return build_dashboards(load_settings(None))


def test_generated_dashboards_are_sound_and_deterministic(models):
    assert [m["uid"] for m in models] == [
        "seawatch-live-cruise",
        "seawatch-otolith-qc",
        "seawatch-fish-reid",
        "seawatch-pipeline",
        "seawatch-review-progress",
    ]
    for model in models:
        assert problems(model, [DS]) == []
        assert model["schemaVersion"] == SCHEMA_VERSION
        json.dumps(model)  # serialisable as it stands
    again = build_dashboards(load_settings(None))
    assert json.dumps(again, sort_keys=True) == json.dumps(models, sort_keys=True)


def test_settings_reach_the_json():
    settings = load_settings(
        None,
        dashboards__datasource_uid="ds-2",
        dashboards__refresh="1m",
        dashboards__evidence_url="https://ship/evidence/",
    )
    models = build_dashboards(settings)
    assert all(m["refresh"] == "1m" for m in models)
    assert all(problems(m, ["ds-2"]) == [] for m in models)
    assert problems(models[0], [DS])  # the old uid would not resolve
    otolith = next(m for m in models if m["uid"] == "seawatch-otolith-qc")
    (constant,) = [v for v in otolith["templating"]["list"] if v["type"] == "constant"]
    assert constant["query"] == "https://ship/evidence"


def _broken(models, uid: str, mutate) -> list[str]:
    model = copy.deepcopy(next(m for m in models if m["uid"] == uid))
    mutate(model)
    return problems(model, [DS])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m.update(schemaVersion=16), "schemaVersion"),
        (
            lambda m: m["panels"][1].update(id=m["panels"][0]["id"]),
            "ids must be present and unique",
        ),
        (lambda m: m["panels"][1]["gridPos"].update(x=0, y=0), "overlaps"),
        (lambda m: m["panels"][0]["gridPos"].update(x=20), "past the 24 columns"),
        (
            lambda m: m["panels"][0]["targets"][0]["datasource"].update(uid="other"),
            "not provisioned",
        ),
        (
            lambda m: m["panels"][0]["targets"][0].update(query='SELECT 1 WHERE "a" =~ /^$ship$/'),
            "$ship",
        ),
        (lambda m: m["panels"][1]["targets"][2].update(expression="$A / $Z"), "missing refIds"),
        (lambda m: m["panels"][0]["targets"].append(dict(m["panels"][0]["targets"][0])), "refIds"),
        (lambda m: m["templating"]["list"].reverse(), "not defined before it"),
        (lambda m: m["templating"]["list"][0].pop("datasource"), "no InfluxDB datasource"),
        (lambda m: m["panels"][0].update(type="graph"), "unknown type"),
    ],
)
def test_each_check_catches_its_fault(models, mutate, expected):
    found = _broken(models, "seawatch-live-cruise", mutate)
    assert any(expected in p for p in found), found


def test_links_must_use_defined_variables(models):
    def drop_constant(model):
        model["templating"]["list"] = [
            v for v in model["templating"]["list"] if v["type"] != "constant"
        ]

    found = _broken(models, "seawatch-otolith-qc", drop_constant)
    assert any("$evidence_url" in p for p in found)
    with pytest.raises(DashboardError, match="evidence_url"):
        model = copy.deepcopy(models[1])
        drop_constant(model)
        check_dashboard(model)


def test_panel_kind_is_checked_when_built():
    with pytest.raises(ValueError, match="unknown kind"):
        Panel("x", "graph", [Query("A", "SELECT 1")])


def test_interpolation_follows_grafana():
    assert references('"a" =~ /^$cruise$/ AND ${station:regex} [[taxon]] $__interval') == {
        "cruise",
        "station",
        "taxon",
        "__interval",
    }
    assert format_value(None) == ".*" and format_value("All") == ".*"
    assert format_value(["st/2"]) == "st\\/2"
    assert format_value(["a.b", "c"]) == "(a\\.b|c)"
    text = render(
        'SELECT x WHERE $timeFilter AND "c" =~ /^$cruise$/ GROUP BY time($__interval)',
        {"cruise": ["MSM120", "PS140"]},
        start_ns=1_000_000_000,
        end_ns=2_000_000_000,
        interval="5m",
    )
    assert text == (
        'SELECT x WHERE time >= 1000ms and time <= 2000ms AND "c" =~ /^(MSM120|PS140)$/ '
        "GROUP BY time(5m)"
    )
