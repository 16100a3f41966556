"""The fish re-identification dashboard: sightings per individual over time, new
individuals, and the similarity distribution of known and new sightings.

Individuals are fields, not tags (their number grows without bound), so per-individual
views select the raw sightings and let Grafana partition or group them by value."""

from __future__ import annotations

from typing import Any

from seawatch.dashboards.grafana_model import Panel, Query, dashboard, query_variable, tag_filter

UID = "seawatch-fish-reid"
WHERE = tag_filter("cruise", "instrument")
_SIGHTINGS = (
    f'SELECT "similarity", "individual", "new_individual" FROM "fish" WHERE $timeFilter AND {WHERE}'
)


def panels() -> list[Panel]:
    """The panels, in reading order."""
    return [
        Panel(
            "Sightings and individuals",
            "stat",
            [
                Query(
                    "A",
                    'SELECT count("similarity") AS "sightings", '
                    'count(distinct("individual")) AS "individuals" '
                    f'FROM "fish" WHERE $timeFilter AND {WHERE}',
                ),
                Query(
                    "B",
                    'SELECT count("similarity") AS "new individuals" FROM "fish" '
                    f'WHERE $timeFilter AND {WHERE} AND "new_individual" = true',
                ),
            ],
            width=8,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": ""}},
        ),
        Panel(
            "Sightings per individual",
            "timeseries",
            [Query("A", _SIGHTINGS, table=True)],
            width=16,
            unit="short",
            description="Each point is a sighting (its similarity), one series per individual.",
            custom={"drawStyle": "points", "pointSize": 7},
            transformations=[
                {"id": "organize", "options": {"excludeByName": {"new_individual": True}}},
                {"id": "partitionByValues", "options": {"fields": ["individual"]}},
            ],
        ),
        Panel(
            "Individuals",
            "table",
            [Query("A", _SIGHTINGS, table=True)],
            width=12,
            height=10,
            transformations=[
                {
                    "id": "groupBy",
                    "options": {
                        "fields": {
                            "individual": {"operation": "groupby", "aggregations": []},
                            "similarity": {
                                "operation": "aggregate",
                                "aggregations": ["count", "mean"],
                            },
                            "Time": {
                                "operation": "aggregate",
                                "aggregations": ["firstNotNull", "lastNotNull"],
                            },
                        }
                    },
                },
                {
                    "id": "sortBy",
                    "options": {"sort": [{"field": "similarity (count)", "desc": True}]},
                },
            ],
        ),
        Panel(
            "New individuals",
            "timeseries",
            [
                Query(
                    "A",
                    'SELECT count("similarity") AS "new individuals" FROM "fish" '
                    f'WHERE $timeFilter AND {WHERE} AND "new_individual" = true '
                    "GROUP BY time($__interval) fill(0)",
                )
            ],
            width=12,
            unit="short",
            description="Sightings that matched no known fish and enrolled a provisional id.",
            custom={"drawStyle": "bars", "fillOpacity": 80},
        ),
        Panel(
            "Similarity distribution",
            "histogram",
            [
                Query(
                    "A",
                    'SELECT "similarity" AS "known" FROM "fish" '
                    f'WHERE $timeFilter AND {WHERE} AND "new_individual" = false',
                    table=True,
                ),
                Query(
                    "B",
                    'SELECT "similarity" AS "new" FROM "fish" '
                    f'WHERE $timeFilter AND {WHERE} AND "new_individual" = true',
                    table=True,
                ),
            ],
            width=24,
            description=(
                "Best gallery similarity of each sighting: matches of known fish, and the "
                "sightings that fell under the open-set threshold (new individuals)."
            ),
        ),
    ]


def build(ds_uid: str, refresh: str) -> dict[str, Any]:
    """The dashboard's JSON model."""
    return dashboard(
        uid=UID,
        title="seawatch · Fish re-ID",
        description="Who was seen when, who is new, and how sure the matches are.",
        panels=panels(),
        variables=[
            query_variable("cruise", "Cruise", "fish"),
            query_variable("instrument", "Camera", "fish", depends=["cruise"]),
        ],
        ds_uid=ds_uid,
        refresh=refresh,
        time_from="now-7d",
    )


__all__ = ["UID", "build", "panels"]
