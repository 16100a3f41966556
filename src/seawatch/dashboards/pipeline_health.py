"""The pipeline health dashboard: the daemon's own ``pipeline`` points (frames/s, objects/s,
latency p50/p99, consumer lag, dead letters, outbox backlog) per worker, and the per-frame
latency per instrument from ``frames``."""

from __future__ import annotations

from typing import Any

from seawatch.dashboards.grafana_model import Panel, Query, dashboard, query_variable, tag_filter

UID = "seawatch-pipeline"
WORKER = tag_filter("worker")
_STACKED = {"stacking": {"mode": "normal"}, "fillOpacity": 30}


def _per_worker(title: str, select: str, unit: str, description: str, **extra: Any) -> Panel:
    text = (
        f'SELECT {select} FROM "pipeline" WHERE $timeFilter AND {WORKER} '
        'GROUP BY time($__interval), "worker" fill(none)'
    )
    return Panel(
        title,
        "timeseries",
        [Query("A", text, alias=extra.pop("alias", "$tag_worker"))],
        unit=unit,
        description=description,
        **extra,
    )


def panels() -> list[Panel]:
    """The panels, in reading order."""
    return [
        _per_worker(
            "Frames/s",
            'mean("frames_per_s")',
            "short",
            "Frames stored per second, stacked over workers.",
            custom=_STACKED,
            width=8,
        ),
        _per_worker(
            "Objects/s",
            'mean("objects_per_s")',
            "short",
            "Objects classified per second, stacked over workers.",
            custom=_STACKED,
            width=8,
        ),
        _per_worker(
            "Latency p50 / p99",
            'mean("latency_p50_ms") AS "p50", max("latency_p99_ms") AS "p99"',
            "ms",
            "Broker to durable record, per reporting interval.",
            alias="$tag_worker $col",
            width=8,
        ),
        _per_worker(
            "Consumer lag",
            'last("lag")',
            "short",
            "Messages behind the end of the assigned partitions.",
            custom=_STACKED,
            width=8,
        ),
        _per_worker(
            "Dead letters",
            'sum("errors")',
            "short",
            "Bad frames sent to the dead-letter topic (with their reason) per interval.",
            custom={"drawStyle": "bars", "fillOpacity": 80},
            width=8,
        ),
        _per_worker(
            "Outbox backlog",
            'last("outbox_backlog")',
            "short",
            "Lines written locally and not yet acknowledged by InfluxDB.",
            custom=_STACKED,
            width=8,
        ),
        Panel(
            "Frame latency p99 by instrument",
            "timeseries",
            [
                Query(
                    "A",
                    'SELECT percentile("latency_ms", 99) FROM "frames" '
                    f"WHERE $timeFilter AND {tag_filter('instrument')} "
                    'GROUP BY time($__interval), "instrument" fill(none)',
                    alias="$tag_instrument",
                )
            ],
            width=24,
            unit="ms",
        ),
    ]


def build(ds_uid: str, refresh: str) -> dict[str, Any]:
    """The dashboard's JSON model."""
    return dashboard(
        uid=UID,
        title="seawatch · Pipeline health",
        description="Is the daemon keeping up, and is anything piling up?",
        panels=panels(),
        variables=[
            query_variable("worker", "Worker", "pipeline"),
            query_variable("instrument", "Instrument", "frames"),
        ],
        ds_uid=ds_uid,
        refresh=refresh,
        time_from="now-3h",
    )


__all__ = ["UID", "build", "panels"]
