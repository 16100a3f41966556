"""The review progress dashboard: how much of what the models saw people have looked at,
from the review station's ``review`` points (:mod:`seawatch.review.progress`).

Each ``review`` point is a snapshot (counts so far, not events), one series per cruise and
taxon for plankton and per cruise for otoliths. "Latest" is therefore the last snapshot of
each series in the time range, and a cruise's total sums those over its taxa: an InfluxQL
subquery takes ``last()`` per (cruise, taxon), the outer query sums. The points carry no
instrument or station tags, so only the cruise variable applies (hence a dashboard of its own
rather than panels on the live cruise one, whose variables would not filter them).
"""

from __future__ import annotations

from typing import Any

from seawatch.dashboards.grafana_model import Panel, Query, dashboard, query_variable, tag_filter

UID = "seawatch-review-progress"
PLANKTON = f"$timeFilter AND \"kind\" = 'plankton' AND {tag_filter('cruise')}"
OTOLITH = f"$timeFilter AND \"kind\" = 'otolith' AND {tag_filter('cruise')}"
_COLORS = {
    "validated": "green",
    "dubious": "orange",
    "confirmed": "red",
    "rejected": "blue",
    "to review": "text",
}


def latest_per_taxon(group_by: str = "") -> str:
    """The last snapshot of every (cruise, taxon) series in the range (objects, validated,
    dubious), optionally per ``group_by`` time bucket, as a subquery."""
    by = f'{group_by}, "cruise", "taxon"' if group_by else '"cruise", "taxon"'
    fill = " fill(none)" if group_by else ""
    return (
        '(SELECT last("objects") AS "objects", last("validated") AS "validated", '
        f'last("dubious") AS "dubious" FROM "review" WHERE {PLANKTON} GROUP BY {by}{fill})'
    )


def _colors(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [
                {"id": "color", "value": {"mode": "fixed", "fixedColor": _COLORS[name]}}
            ],
        }
        for name in names
    ]


def _stacked_bars(x_field: str) -> dict[str, Any]:
    return {
        "xField": x_field,
        "orientation": "horizontal",
        "stacking": "normal",
        "showValue": "auto",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
    }


def panels() -> list[Panel]:
    """The panels, in reading order."""
    return [
        Panel(
            "Review totals",
            "stat",
            [
                Query(
                    "A",
                    'SELECT sum("objects") AS "objects", sum("validated") AS "validated", '
                    'sum("dubious") AS "dubious", '
                    'sum("validated") / sum("objects") AS "validated share" '
                    f"FROM {latest_per_taxon()} WHERE $timeFilter",
                )
            ],
            width=8,
            description="Plankton objects of the selected cruises, as last reported.",
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": ""}},
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "validated share"},
                    "properties": [{"id": "unit", "value": "percentunit"}],
                }
            ],
        ),
        Panel(
            "Validated share per cruise",
            "timeseries",
            [
                Query(
                    "A",
                    'SELECT sum("validated") / sum("objects") AS "validated share" '
                    f"FROM {latest_per_taxon('time($__interval)')} WHERE $timeFilter "
                    'GROUP BY time($__interval), "cruise" fill(none)',
                    alias="$tag_cruise",
                )
            ],
            width=16,
            unit="percentunit",
            description=(
                "Validated plankton objects over all objects of the cruise, as of the last "
                "snapshot in each interval."
            ),
        ),
        Panel(
            "Validated and dubious per taxon",
            "barchart",
            [
                Query(
                    "A",
                    'SELECT sum("validated") AS "validated", sum("dubious") AS "dubious", '
                    'sum("objects") - sum("validated") - sum("dubious") AS "to review" '
                    f'FROM {latest_per_taxon()} WHERE $timeFilter GROUP BY "taxon"',
                    table=True,
                )
            ],
            width=24,
            height=10,
            unit="short",
            description=(
                "Latest counts per taxon (the reviewed label), summed over the selected "
                "cruises; a reassigned object counts under its new taxon."
            ),
            options=_stacked_bars("taxon"),
            overrides=_colors("validated", "dubious", "to review"),
            transformations=[
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                {"id": "sortBy", "options": {"sort": [{"field": "validated", "desc": True}]}},
            ],
        ),
        Panel(
            "Otolith review share",
            "timeseries",
            [
                Query(
                    "A",
                    f'SELECT last("reviewed_share") FROM "review" WHERE {OTOLITH} '
                    'GROUP BY time($__interval), "cruise" fill(none)',
                    alias="$tag_cruise",
                )
            ],
            width=16,
            unit="percentunit",
            description="Flagged otoliths confirmed or rejected, over all flagged, per cruise.",
        ),
        Panel(
            "Flagged otoliths: confirmed vs rejected",
            "barchart",
            [
                Query(
                    "A",
                    'SELECT last("confirmed") AS "confirmed", last("rejected") AS "rejected", '
                    'last("flagged") - last("confirmed") - last("rejected") AS "to review" '
                    f'FROM "review" WHERE {OTOLITH} GROUP BY "cruise"',
                    table=True,
                )
            ],
            width=8,
            unit="short",
            description="Latest: anomalies confirmed, false alarms rejected, still to review.",
            options=_stacked_bars("cruise"),
            overrides=_colors("confirmed", "rejected", "to review"),
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
        ),
    ]


def build(ds_uid: str, refresh: str) -> dict[str, Any]:
    """The dashboard's JSON model."""
    return dashboard(
        uid=UID,
        title="seawatch · Review progress",
        description="What people validated, marked dubious, confirmed and rejected so far.",
        panels=panels(),
        variables=[query_variable("cruise", "Cruise", "review")],
        ds_uid=ds_uid,
        refresh=refresh,
        time_from="now-7d",
    )


__all__ = ["UID", "build", "latest_per_taxon", "panels"]
