"""The live cruise dashboard: plankton counts and concentrations per taxon over time and by
station, the top taxa, the normalised biomass size spectrum and the unknown share."""

from __future__ import annotations

from typing import Any

from seawatch.dashboards.grafana_model import (
    Math,
    Panel,
    Query,
    dashboard,
    query_variable,
    tag_filter,
)
from seawatch.storage.size_spectrum import SIZE_CLASSES

UID = "seawatch-live-cruise"
WHERE = tag_filter("cruise", "instrument", "station")
WHERE_TAXON = tag_filter("cruise", "instrument", "station", "taxon")
# Only objects of frames whose imaged volume is known enter a concentration.
_WITH_VOLUME = '"concentration_per_m3" >= 0'
_VOLUME_M3 = (
    'SELECT sum("volume_ml") * 0.000001 FROM "frames" '
    f"WHERE $timeFilter AND \"task\" = 'plankton' AND {WHERE}"
)


def _decimal(value: float) -> str:
    """A plain decimal literal (InfluxQL has no exponent notation)."""
    return f"{value:.12f}".rstrip("0").rstrip(".")


def concentration_targets(counts_by: str, volume_by: str) -> list[Query | Math]:
    """Counts per taxon (frames with a volume) over the imaged volume, as Grafana's
    server-side ``$A / $B``; ``counts_by``/``volume_by`` are the two GROUP BY clauses."""
    return [
        Query(
            "A",
            f'SELECT sum("count") FROM "plankton" WHERE $timeFilter AND {WHERE_TAXON} '
            f"AND {_WITH_VOLUME} GROUP BY {counts_by}",
            hide=True,
        ),
        Query("B", f"{_VOLUME_M3} GROUP BY {volume_by}", hide=True),
        Math("C", "$A / $B"),
    ]


def nbss_query() -> str:
    """One row: the NBSS of every ESD class, ``sum(bv) / sum(volume) / width`` (m⁻³)."""
    columns = ", ".join(
        f'sum("{c.field}") / sum("volume_m3") * {_decimal(1 / c.width_mm3)} AS "{c.label}"'
        for c in SIZE_CLASSES
    )
    return f'SELECT {columns} FROM "plankton_size" WHERE $timeFilter AND {WHERE}'


def panels() -> list[Panel]:
    """The panels, in reading order."""
    counts = (
        f'SELECT sum("count") FROM "plankton" WHERE $timeFilter AND {WHERE_TAXON} '
        'GROUP BY time($__interval), "taxon" fill(0)'
    )
    return [
        Panel(
            "Objects per taxon",
            "timeseries",
            [Query("A", counts, alias="$tag_taxon")],
            unit="short",
            description="Objects classified per taxon in each interval (all frames).",
            custom={"drawStyle": "bars", "stacking": {"mode": "normal"}, "fillOpacity": 80},
        ),
        Panel(
            "Concentration per taxon (ind./m³)",
            "timeseries",
            concentration_targets(
                'time($__interval), "taxon" fill(0)', "time($__interval) fill(none)"
            ),
            unit="short",
            description=(
                "Objects per m³ imaged: the taxon's count over the volume of all plankton "
                "frames in the interval (frames without volume-ml are left out)."
            ),
        ),
        Panel(
            "Top taxa",
            "barchart",
            [
                Query(
                    "A",
                    f'SELECT sum("count") AS "objects" FROM "plankton" '
                    f'WHERE $timeFilter AND {WHERE_TAXON} GROUP BY "taxon"',
                    table=True,
                )
            ],
            width=8,
            unit="short",
            options={"xField": "taxon", "orientation": "horizontal", "showValue": "auto"},
            transformations=[
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                {"id": "sortBy", "options": {"sort": [{"field": "objects", "desc": True}]}},
                {"id": "limit", "options": {"limitField": 15}},
            ],
        ),
        Panel(
            "Concentration by station (ind./m³)",
            "table",
            concentration_targets('"station", "taxon"', '"station"'),
            width=8,
            unit="short",
            description="Per station and taxon over the dashboard's time range.",
            transformations=[
                {
                    "id": "reduce",
                    "options": {
                        "mode": "seriesToRows",
                        "reducers": ["lastNotNull"],
                        "labelsToFields": True,
                    },
                }
            ],
        ),
        Panel(
            "Unknown share",
            "timeseries",
            [
                Query(
                    "A",
                    'SELECT sum("unknown_objects") / sum("objects") AS "unknown share" '
                    f'FROM "frames" WHERE $timeFilter AND "task" = \'plankton\' AND {WHERE} '
                    "GROUP BY time($__interval) fill(none)",
                )
            ],
            width=8,
            unit="percentunit",
            description=(
                "Objects below the classifier's confidence threshold, as a share of all "
                "objects (the taxon filter does not apply)."
            ),
        ),
        Panel(
            "Normalised biomass size spectrum",
            "barchart",
            [Query("A", nbss_query(), table=True)],
            width=24,
            height=9,
            description=(
                "NBSS per ESD class (each class doubles in biovolume): biovolume per m³ "
                "imaged divided by the class's biovolume width, in m⁻³; log scale."
            ),
            options={"xField": "Field", "orientation": "vertical", "showValue": "never"},
            custom={
                "scaleDistribution": {"type": "log", "log": 10},
                "axisLabel": "NBSS (m⁻³)",
            },
            transformations=[
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                {"id": "reduce", "options": {"mode": "seriesToRows", "reducers": ["lastNotNull"]}},
            ],
        ),
    ]


def build(ds_uid: str, refresh: str) -> dict[str, Any]:
    """The dashboard's JSON model."""
    return dashboard(
        uid=UID,
        title="seawatch · Live cruise",
        description="Plankton counts, concentrations and size spectrum as frames arrive.",
        panels=panels(),
        variables=[
            query_variable("cruise", "Cruise", "plankton"),
            query_variable("instrument", "Instrument", "plankton", depends=["cruise"]),
            query_variable("station", "Station", "plankton", depends=["cruise", "instrument"]),
            query_variable(
                "taxon", "Taxon", "plankton", depends=["cruise", "instrument", "station"]
            ),
        ],
        ds_uid=ds_uid,
        refresh=refresh,
        time_from="now-6h",
    )


__all__ = ["UID", "build", "concentration_targets", "nbss_query", "panels"]
