"""The otolith QC dashboard: the anomaly rate, the score distribution against the model's
threshold, and the flagged specimens with links to their thumbnails and heat maps."""

from __future__ import annotations

from typing import Any

from seawatch.dashboards.grafana_model import (
    Panel,
    Query,
    constant_variable,
    dashboard,
    query_variable,
    tag_filter,
)

UID = "seawatch-otolith-qc"
WHERE = tag_filter("cruise", "instrument")


def _evidence_link(column: str, title: str) -> dict[str, Any]:
    """A table column whose cells link to an evidence file under ``$evidence_url``."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [
            {
                "id": "links",
                "value": [
                    {
                        "title": title,
                        "url": "${evidence_url}/${__value.raw}",
                        "targetBlank": True,
                    }
                ],
            }
        ],
    }


def panels() -> list[Panel]:
    """The panels, in reading order."""
    return [
        Panel(
            "Specimens checked",
            "stat",
            [
                Query(
                    "A",
                    'SELECT count("score") AS "specimens", sum("flagged") AS "flagged", '
                    'mean("flagged") AS "anomaly rate" '
                    f'FROM "otolith" WHERE $timeFilter AND {WHERE}',
                )
            ],
            width=8,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": ""}},
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "anomaly rate"},
                    "properties": [{"id": "unit", "value": "percentunit"}],
                }
            ],
        ),
        Panel(
            "Anomaly rate",
            "timeseries",
            [
                Query(
                    "A",
                    f'SELECT mean("flagged") FROM "otolith" WHERE $timeFilter AND {WHERE} '
                    'GROUP BY time($__interval), "instrument" fill(none)',
                    alias="$tag_instrument",
                )
            ],
            width=16,
            unit="percentunit",
            description="Share of specimens scored over the model's threshold.",
        ),
        Panel(
            "Anomaly score distribution",
            "histogram",
            [
                Query(
                    "A",
                    f'SELECT "score" FROM "otolith" WHERE $timeFilter AND {WHERE}',
                    table=True,
                )
            ],
            description="Scores of all specimens; compare with the threshold beside it.",
        ),
        Panel(
            "Score against threshold",
            "timeseries",
            [
                Query(
                    "A",
                    f'SELECT "score", "threshold" FROM "otolith" WHERE $timeFilter AND {WHERE}',
                    alias="$col",
                )
            ],
            unit="short",
            custom={"drawStyle": "points", "pointSize": 6},
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "threshold"},
                    "properties": [
                        {"id": "custom.drawStyle", "value": "line"},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                    ],
                }
            ],
        ),
        Panel(
            "Flagged specimens",
            "table",
            [
                Query(
                    "A",
                    'SELECT "specimen_id", "score", "threshold", "instrument", "thumbnail", '
                    f'"heatmap", "frame_uid" FROM "otolith" WHERE $timeFilter AND {WHERE} '
                    'AND "flagged" = 1',
                    table=True,
                )
            ],
            width=24,
            height=10,
            description="Click a thumbnail or heat map to open what the model saw.",
            options={"sortBy": [{"displayName": "Time", "desc": True}]},
            overrides=[
                _evidence_link("thumbnail", "Thumbnail"),
                _evidence_link("heatmap", "Heat map"),
            ],
        ),
    ]


def build(ds_uid: str, refresh: str, evidence_url: str) -> dict[str, Any]:
    """The dashboard's JSON model."""
    return dashboard(
        uid=UID,
        title="seawatch · Otolith QC",
        description="Anomalous otoliths (vaterite, broken, cracked, debris, blur) flagged.",
        panels=panels(),
        variables=[
            query_variable("cruise", "Cruise", "otolith"),
            query_variable("instrument", "Scanner", "otolith", depends=["cruise"]),
            constant_variable("evidence_url", evidence_url.rstrip("/")),
        ],
        ds_uid=ds_uid,
        refresh=refresh,
        time_from="now-7d",
    )


__all__ = ["UID", "build", "panels"]
