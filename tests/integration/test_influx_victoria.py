"""The InfluxDB writer against a real VictoriaMetrics (it accepts /api/v2/write)."""

from __future__ import annotations

import sqlite3
from collections import Counter

import pytest

from tests.integration.helpers import publish_synthetic, run_until, settings_for

pytestmark = pytest.mark.integration


def _sum_samples(series: list[dict]) -> float:
    return sum(sum(s["values"]) for s in series)


def test_influx_writer_delivers_the_same_counts(tmp_path, broker, unique, model_dir, victoria):
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        storage__influx__url=victoria.url,
        storage__influx__token="test-token",
    )
    n = 150
    publish_synthetic(settings, n, seed=3, full_share=0.1)
    stats = run_until(settings, n)
    assert stats.frames == n

    with sqlite3.connect(settings.storage.local.path) as db:
        local_objects = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        local_taxa = dict(db.execute("SELECT taxon, COUNT(*) FROM objects GROUP BY taxon"))

    frames = victoria.export('{__name__="frames_objects"}')
    assert sum(len(s["values"]) for s in frames) == n
    assert _sum_samples(frames) == local_objects == stats.objects

    counts = victoria.export('{__name__="plankton_count"}')
    by_taxon: dict[str, float] = {}
    for series in counts:
        taxon = series["metric"]["taxon"]
        by_taxon[taxon] = by_taxon.get(taxon, 0) + sum(series["values"])
        assert series["metric"]["cruise"] == "demo-2026"
        assert series["metric"]["model"]
    assert by_taxon == local_taxa


def test_points_are_stamped_with_capture_time_so_replays_coincide(
    tmp_path, broker, unique, model_dir, victoria
):
    """Two replays of the same frames write their points at the same n timestamps: 2n raw
    samples (VictoriaMetrics' export returns every sample it was sent; it keeps duplicates),
    each timestamp exactly twice, once per replay. A frame written twice by one run shows as
    a third sample; InfluxDB would overwrite the identical point."""
    settings = settings_for(tmp_path, broker, unique, model_dir, storage__influx__url=victoria.url)
    n = 40
    publish_synthetic(settings, n, seed=4)
    for _ in range(2):  # a second group replays the topic from the start
        settings = settings_for(
            tmp_path,
            broker,
            unique,
            model_dir,
            storage__influx__url=victoria.url,
            kafka__group_id=f"replay-{_}-{unique}",
        )
        run_until(settings, n)
    frames = victoria.export('{__name__="frames_objects"}')
    per_point = Counter(
        (tuple(sorted(s["metric"].items())), t) for s in frames for t in s["timestamps"]
    )
    assert len(per_point) == n
    assert set(per_point.values()) == {2}, Counter(per_point.values())


def test_the_daemon_writes_its_own_pipeline_metrics(tmp_path, broker, unique, model_dir, victoria):
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        storage__influx__url=victoria.url,
        storage__metrics_interval_s=0.5,
    )
    n = 120
    publish_synthetic(settings, n, seed=6, broken_share=0.1)
    stats = run_until(settings, n)
    series = {s["metric"]["__name__"]: s for s in victoria.export('{__name__=~"pipeline_.*"}')}
    assert {"pipeline_frames_per_s", "pipeline_errors", "pipeline_lag"} <= set(series)
    assert series["pipeline_frames_per_s"]["metric"]["worker"].startswith(f"g{unique}@")
    assert max(series["pipeline_frames_per_s"]["values"]) > 0
    assert sum(series["pipeline_errors"]["values"]) <= stats.dead_letters
    assert min(series["pipeline_lag"]["values"]) >= 0
