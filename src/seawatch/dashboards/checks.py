"""Structural checks of a dashboard's JSON model, run before it is written anywhere.

What Grafana would only show as a broken panel is caught here: the schema version, unique
panel ids and query refIds, panels that fit the 24-column grid without overlapping, every
target's datasource resolvable, every expression's inputs present, every variable that a
query, alias, title or link uses defined (and chained variables defined before their use).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from seawatch.contracts.errors import SeawatchError
from seawatch.dashboards.grafana_model import (
    DATASOURCE_TYPE,
    EXPRESSION_UID,
    GRID_COLUMNS,
    PANEL_KINDS,
    SCHEMA_VERSION,
)
from seawatch.dashboards.interpolate import is_builtin, references


class DashboardError(SeawatchError):
    """A dashboard model that Grafana would render broken."""


def _panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def _links(panel: dict[str, Any]) -> Iterator[str]:
    for link in panel.get("links", []):
        yield link.get("url", "")
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "links":
                yield from (link.get("url", "") for link in prop.get("value", []))


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _grid_problems(panels: list[dict[str, Any]]) -> list[str]:
    problems, placed = [], []
    for panel in panels:
        grid, name = panel.get("gridPos"), f"panel {panel.get('title')!r}"
        if not grid or any(not isinstance(grid.get(k), int) for k in "xywh"):
            problems.append(f"{name}: gridPos needs integer x, y, w, h")
            continue
        if grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["y"] < 0:
            problems.append(f"{name}: gridPos {grid} has a negative or empty extent")
        if grid["x"] + grid["w"] > GRID_COLUMNS:
            problems.append(f"{name}: gridPos {grid} runs past the 24 columns")
        for other_name, other in placed:
            if _overlaps(grid, other):
                problems.append(f"{name} overlaps {other_name}")
        placed.append((name, grid))
    return problems


def _target_problems(
    panel: dict[str, Any], datasource_uids: Collection[str] | None, seen_uids: set[str]
) -> list[str]:
    name, problems = f"panel {panel.get('title')!r}", []
    targets = panel.get("targets", [])
    ref_ids = [t.get("refId") for t in targets]
    if not targets:
        problems.append(f"{name}: no targets")
    if len(set(ref_ids)) != len(ref_ids) or None in ref_ids:
        problems.append(f"{name}: refIds must be present and unique, got {ref_ids}")
    for target in targets:
        ds = target.get("datasource") or panel.get("datasource") or {}
        if ds.get("uid") == EXPRESSION_UID:
            missing = references(target.get("expression", "")) - set(ref_ids)
            if missing:
                problems.append(f"{name}: expression uses missing refIds {sorted(missing)}")
            continue
        if ds.get("type") != DATASOURCE_TYPE or not ds.get("uid"):
            problems.append(f"{name}: target {target.get('refId')} has no InfluxDB datasource")
        elif datasource_uids is not None and ds["uid"] not in datasource_uids:
            problems.append(f"{name}: datasource uid {ds['uid']!r} is not provisioned")
        else:
            seen_uids.add(ds["uid"])
        if not target.get("query", "").strip():
            problems.append(f"{name}: target {target.get('refId')} has no query")
    return problems


def _variable_problems(model: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    variables = model.get("templating", {}).get("list", [])
    defined: set[str] = set()
    for variable in variables:
        name = variable.get("name")
        if not name or name in defined:
            problems.append(f"variable {name!r}: missing or repeated name")
        for used in references(variable.get("query", "") if variable["type"] == "query" else ""):
            if not is_builtin(used) and used not in defined:
                problems.append(f"variable {name!r} uses ${used}, not defined before it")
        defined.add(name)
    for panel in _panels(model):
        texts = [panel.get("title", ""), *_links(panel)]
        for target in panel.get("targets", []):
            texts.append(target.get("query", ""))
            for used in references(target.get("alias", "")):
                if not is_builtin(used, alias=True) and used not in defined:
                    problems.append(f"panel {panel.get('title')!r}: alias uses undefined ${used}")
        for used in set().union(*(references(text) for text in texts)):
            if not is_builtin(used) and used not in defined:
                problems.append(f"panel {panel.get('title')!r} uses undefined variable ${used}")
    return problems


def problems(model: dict[str, Any], datasource_uids: Collection[str] | None = None) -> list[str]:
    """Everything wrong with ``model``; empty when it is sound.

    ``datasource_uids``: the datasources that will exist; None: any one uid, used
    consistently."""
    found = []
    if model.get("schemaVersion") != SCHEMA_VERSION:
        found.append(f"schemaVersion is {model.get('schemaVersion')}, expected {SCHEMA_VERSION}")
    if not model.get("uid") or len(model["uid"]) > 40 or not model.get("title"):
        found.append("the dashboard needs a uid (at most 40 characters) and a title")
    panels = list(_panels(model))
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids) or None in ids:
        found.append(f"panel ids must be present and unique, got {ids}")
    found += _grid_problems(panels)
    seen_uids: set[str] = set()
    for panel in panels:
        if panel.get("type") not in PANEL_KINDS | {"row"}:
            found.append(f"panel {panel.get('title')!r}: unknown type {panel.get('type')!r}")
        if panel.get("type") != "row":
            found += _target_problems(panel, datasource_uids, seen_uids)
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            ds = variable.get("datasource") or {}
            if ds.get("type") != DATASOURCE_TYPE or not ds.get("uid"):
                found.append(f"variable {variable.get('name')!r} has no InfluxDB datasource")
            else:
                seen_uids.add(ds["uid"])
    if datasource_uids is None and len(seen_uids) > 1:
        found.append(f"targets use several datasources {sorted(seen_uids)}; expected one")
    return found + _variable_problems(model)


def check_dashboard(model: dict[str, Any], datasource_uids: Collection[str] | None = None) -> None:
    """Raise :class:`DashboardError` listing every problem of ``model``."""
    found = problems(model, datasource_uids)
    if found:
        title = model.get("title") or model.get("uid") or "dashboard"
        raise DashboardError(f"{title}: " + "; ".join(found))


__all__ = ["DashboardError", "check_dashboard", "problems"]
