"""The few Grafana JSON shapes the dashboards are made of, built from small typed pieces.

A :class:`Panel` holds InfluxQL :class:`Query` targets (and server-side :class:`Math`
expressions where a number needs two measurements); :func:`dashboard` lays panels out on
Grafana's 24-column grid and gives every panel an id, every target the datasource. The
JSON follows Grafana 10.4/11 (``schemaVersion`` :data:`SCHEMA_VERSION`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE_TYPE = "influxdb"
EXPRESSION_UID = "__expr__"
GRID_COLUMNS = 24
PANEL_KINDS = frozenset({"timeseries", "barchart", "table", "stat", "histogram", "bargauge"})


@dataclass(frozen=True, slots=True)
class Query:
    """An InfluxQL target. ``table``: Grafana's table result format (one row per point)."""

    ref_id: str
    text: str
    alias: str | None = None
    table: bool = False
    hide: bool = False


@dataclass(frozen=True, slots=True)
class Math:
    """A Grafana server-side math expression over other targets, e.g. ``$A / $B``.

    Series are joined by timestamp; labels join when one set is a subset of the other."""

    ref_id: str
    expression: str


Target = Query | Math


@dataclass(slots=True)
class Panel:
    """One panel: what it shows (``kind``), its targets, its size and display options."""

    title: str
    kind: str
    targets: Sequence[Target]
    width: int = 12
    height: int = 8
    unit: str | None = None
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in PANEL_KINDS:
            raise ValueError(f"panel {self.title!r}: unknown kind {self.kind!r}")


def datasource_ref(uid: str) -> dict[str, str]:
    """A reference to the InfluxDB datasource."""
    return {"type": DATASOURCE_TYPE, "uid": uid}


def _target_json(target: Target, ds_uid: str) -> dict[str, Any]:
    if isinstance(target, Math):
        return {
            "refId": target.ref_id,
            "datasource": {"type": "__expr__", "uid": EXPRESSION_UID},
            "type": "math",
            "expression": target.expression,
        }
    body: dict[str, Any] = {
        "refId": target.ref_id,
        "datasource": datasource_ref(ds_uid),
        "query": target.text,
        "rawQuery": True,
        "resultFormat": "table" if target.table else "time_series",
    }
    if target.alias:
        body["alias"] = target.alias
    if target.hide:
        body["hide"] = True
    return body


def _panel_json(panel: Panel, panel_id: int, grid: dict[str, int], ds_uid: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {"custom": dict(panel.custom)}
    if panel.unit:
        defaults["unit"] = panel.unit
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "gridPos": grid,
        "datasource": datasource_ref(ds_uid),
        "targets": [_target_json(t, ds_uid) for t in panel.targets],
        "fieldConfig": {"defaults": defaults, "overrides": list(panel.overrides)},
        "options": dict(panel.options),
        "transformations": list(panel.transformations),
    }


def layout(panels: Sequence[Panel]) -> list[dict[str, int]]:
    """Grid positions, left to right, wrapping to a new row at 24 columns."""
    grids, x, y, row_height = [], 0, 0, 0
    for panel in panels:
        if not 1 <= panel.width <= GRID_COLUMNS:
            raise ValueError(f"panel {panel.title!r}: width {panel.width} not in 1..24")
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        grids.append({"x": x, "y": y, "w": panel.width, "h": panel.height})
        x += panel.width
        row_height = max(row_height, panel.height)
    return grids


def tag_filter(*tags: str) -> str:
    """``"t" =~ /^$t$/`` for each tag, joined with AND (a template variable per tag)."""
    return " AND ".join(f'"{tag}" =~ /^${tag}$/' for tag in tags)


def query_variable(
    name: str, label: str, measurement: str, *, key: str | None = None, depends: Sequence[str] = ()
) -> dict[str, Any]:
    """A multi-value template variable over one tag's values (All = any value)."""
    where = f" WHERE {tag_filter(*depends)}" if depends else ""
    text = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key or name}"{where}'
    return {
        "type": "query",
        "name": name,
        "label": label,
        "query": text,
        "definition": text,
        "refresh": 2,  # on time-range change: new cruises and stations appear
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
        "regex": "",
    }


def constant_variable(name: str, value: str) -> dict[str, Any]:
    """A hidden constant (e.g. the base URL of the evidence files)."""
    return {
        "type": "constant",
        "name": name,
        "query": value,
        "hide": 2,
        "current": {"text": value, "value": value},
        "options": [{"selected": True, "text": value, "value": value}],
    }


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    panels: Sequence[Panel],
    variables: Sequence[dict[str, Any]],
    ds_uid: str,
    refresh: str,
    time_from: str = "now-24h",
) -> dict[str, Any]:
    """The dashboard JSON model: panels laid out and numbered, variables bound to the
    datasource."""
    for variable in variables:
        if variable["type"] == "query":
            variable["datasource"] = datasource_ref(ds_uid)
    grids = layout(panels)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["seawatch"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "links": [],
        "panels": [
            _panel_json(panel, number, grid, ds_uid)
            for number, (panel, grid) in enumerate(zip(panels, grids, strict=True), 1)
        ],
    }


__all__ = [
    "DATASOURCE_TYPE",
    "EXPRESSION_UID",
    "PANEL_KINDS",
    "SCHEMA_VERSION",
    "Math",
    "Panel",
    "Query",
    "Target",
    "constant_variable",
    "dashboard",
    "datasource_ref",
    "layout",
    "query_variable",
    "tag_filter",
]
