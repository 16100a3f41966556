"""Grafana's part of a panel, reproduced for the tests (no Grafana server can run here):
variables substituted, InfluxQL targets run against the real server, server-side ``$A / $B``
math evaluated as Grafana's expressions do (join by timestamp; labels join by subset)."""

from __future__ import annotations

from seawatch.dashboards.influxql import InfluxQLClient, Series
from seawatch.dashboards.interpolate import render
from tests.dashboards import cruise_data as cd


def run_panel(
    client: InfluxQLClient,
    panel: dict,
    selection: dict,
    constants: dict,
    *,
    start_ns: int = cd.T0,
    end_ns: int = cd.T0 + cd.SPAN_NS - 1,
    interval: str = "10m",
) -> dict:
    """refId -> series for every InfluxQL target; math targets evaluated like Grafana."""
    out: dict[str, list[Series]] = {}
    for target in panel["targets"]:
        if target.get("type") == "math":
            left, _, right = target["expression"].partition(" / ")
            out[target["refId"]] = divide(out[left.strip("$")], out[right.strip("$")])
            continue
        text = render(
            target["query"],
            selection,
            start_ns=start_ns,
            end_ns=end_ns,
            interval=interval,
            constants=constants,
        )
        assert "$" not in text.replace("$/", "").replace("^", ""), text
        out[target["refId"]] = client.query(text)
    return out


def divide(numerators: list[Series], denominators: list[Series]) -> list[Series]:
    """Grafana SSE ``$A / $B``: series whose labels are a subset join, point by timestamp."""
    result = []
    for a in numerators:
        for b in denominators:
            if not (b.tags.items() <= a.tags.items() or a.tags.items() <= b.tags.items()):
                continue
            below = {t: v for t, v in b.values if v}
            values = [[t, v / below[t]] for t, v in a.values if t in below and v is not None]
            result.append(Series(a.name, ["time", "value"], values, {**b.tags, **a.tags}))
    return result
