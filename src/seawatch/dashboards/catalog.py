"""Every dashboard seawatch provisions, built from the settings."""

from __future__ import annotations

from typing import Any

from seawatch.config import Settings
from seawatch.dashboards import (
    fish_reid,
    live_cruise,
    otolith_qc,
    pipeline_health,
    review_progress,
)


def build_dashboards(settings: Settings) -> list[dict[str, Any]]:
    """The Grafana JSON models: live cruise, otolith QC, fish re-ID, pipeline health, review
    progress."""
    d = settings.dashboards
    return [
        live_cruise.build(d.datasource_uid, d.refresh),
        otolith_qc.build(d.datasource_uid, d.refresh, d.evidence_url),
        fish_reid.build(d.datasource_uid, d.refresh),
        pipeline_health.build(d.datasource_uid, d.refresh),
        review_progress.build(d.datasource_uid, d.refresh),
    ]


__all__ = ["build_dashboards"]
