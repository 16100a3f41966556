"""The daemon's own output, loaded into a real InfluxDB 1.x, answers the live-cruise and
pipeline-health panels with the numbers of its local store.

The daemon runs on the Tansu broker with the committed plankton model; its InfluxDB URL
points at a closed port, so every line it would send stays in the durable outbox. Those
lines are then loaded through InfluxDB 1.x's v1 ``/write`` (1.6 has no v2 write API) and
each panel's query is compared with SQL over the local store of the same run. People's
decisions are then made on that store with the review station's code, and its ``review``
points answer the review-progress panels.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict

import pytest

from seawatch.dashboards import live_cruise, pipeline_health, review_progress
from seawatch.dashboards.influxql import InfluxQLClient
from seawatch.ingest.broker import free_port
from seawatch.review.decisions import decide_objects
from seawatch.review.progress import progress_lines
from seawatch.storage.size_spectrum import SIZE_CLASSES, class_of
from tests.dashboards.grafana_eval import run_panel
from tests.integration.helpers import publish_synthetic, run_until, settings_for
from tests.servers import influxdb1

pytestmark = pytest.mark.integration
ALL = {"cruise": None, "instrument": None, "station": None, "taxon": None, "worker": None}


def _panel(module, title: str) -> dict:
    model = module.build("seawatch-influxdb", "30s")
    return next(p for p in model["panels"] if p["title"] == title)


def _review(store, at_ns: int) -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    """Validate every 4th object, mark 5 dubious, reassign every 8th; the ``review`` points
    then, and {label: (validated, dubious, to review)} from the store."""
    db = sqlite3.connect(store, isolation_level=None)
    try:
        rows = db.execute("SELECT frame_uid, idx, version FROM objects ORDER BY 1, 2").fetchall()
        assert decide_objects(db, "anna", rows[0::4], "validate").applied
        assert decide_objects(db, "anna", rows[1::4][:5], "dubious").applied
        assert decide_objects(db, "rolf", rows[2::8], "reassign", "detritus").applied
        expected = {
            label: (v, d, n - v - d)
            for label, v, d, n in db.execute(
                "SELECT label, SUM(status = 'validated'), SUM(status = 'dubious'), COUNT(*) "
                "FROM objects GROUP BY label"
            )
        }
        return progress_lines(db, now_ns=at_ns), expected
    finally:
        db.close()


def test_panels_match_the_local_store(tmp_path, broker, unique, model_dir):
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        storage__influx__url=f"http://127.0.0.1:{free_port()}",  # nothing listens: all stays
        storage__outbox__shutdown_drain_s=0,
    )
    n = 120
    publish_synthetic(settings, n, seed=11, full_share=0.25)
    assert run_until(settings, n).frames > 0

    with sqlite3.connect(settings.storage.outbox_path) as outbox:
        bodies = [body for (body,) in outbox.execute("SELECT body FROM pending")]
    lines = [text for body in bodies for text in body.split("\n") if text]
    with sqlite3.connect(settings.storage.local.path) as db:
        taxa = dict(db.execute("SELECT taxon, COUNT(*) FROM objects GROUP BY taxon"))
        first, last = db.execute(
            "SELECT MIN(captured_at_ns), MAX(captured_at_ns) FROM frames"
        ).fetchone()
        station_counts = db.execute(
            "SELECT f.station, o.taxon, COUNT(*) FROM objects o "
            "JOIN frames f ON f.uid = o.frame_uid "
            "WHERE f.volume_ml IS NOT NULL GROUP BY f.station, o.taxon"
        ).fetchall()
        station_volume = dict(
            db.execute(
                "SELECT station, SUM(volume_ml) * 1e-6 FROM frames "
                "WHERE task = 'plankton' AND volume_ml IS NOT NULL GROUP BY station"
            )
        )
        sized = db.execute(
            "SELECT o.esd_um FROM objects o JOIN frames f ON f.uid = o.frame_uid "
            "WHERE f.volume_ml IS NOT NULL AND f.pixel_size_um IS NOT NULL"
        ).fetchall()
        sized_volume = db.execute(
            "SELECT SUM(volume_ml) * 1e-6 FROM frames "
            "WHERE volume_ml IS NOT NULL AND pixel_size_um IS NOT NULL"
        ).fetchone()[0]
    assert len(taxa) >= 3 and sized and station_counts

    with influxdb1(tmp_path / "influx") as server:
        client = InfluxQLClient(server.url, "seawatch")
        client.execute("CREATE DATABASE seawatch")
        server.write("seawatch", lines)
        window = {"start_ns": first - 3600 * 10**9, "end_ns": last + 3600 * 10**9}

        top = run_panel(client, _panel(live_cruise, "Top taxa"), ALL, {}, **window)
        assert {s.tags["taxon"]: s.values[0][1] for s in top["A"]} == taxa

        by_station = run_panel(
            client, _panel(live_cruise, "Concentration by station (ind./m³)"), ALL, {}, **window
        )
        actual = {(s.tags["station"], s.tags["taxon"]): s.values[0][1] for s in by_station["C"]}
        expected = {(st, tx): k / station_volume[st] for st, tx, k in station_counts}
        assert actual == pytest.approx(expected)

        nbss = run_panel(
            client, _panel(live_cruise, "Normalised biomass size spectrum"), ALL, {}, **window
        )
        (series,) = nbss["A"]
        row = {k: v for k, v in series.rows()[0].items() if k != "time" and v is not None}
        biovolume: dict[str, float] = defaultdict(float)
        for (esd,) in sized:
            if (size_class := class_of(esd)) is not None:
                biovolume[size_class.label] += math.pi / 6 * esd**3 * 1e-9
        widths = {c.label: c.width_mm3 for c in SIZE_CLASSES}
        assert row == pytest.approx({k: v / sized_volume / widths[k] for k, v in biovolume.items()})

        # The shutdown point of the daemon's own health measurement is there too.
        frames_per_s = run_panel(
            client,
            _panel(pipeline_health, "Frames/s"),
            ALL,
            {},
            start_ns=first - 3600 * 10**9,
            end_ns=last + 7200 * 10**9,
        )
        (worker,) = frames_per_s["A"]
        assert worker.tags["worker"].startswith(f"g{unique}@")
        assert any(v for _, v in worker.values)

        # The review station's points, after decisions on the same store.
        review_lines, per_label = _review(settings.storage.local.path, last + 10**9)
        server.write("seawatch", review_lines)
        per_taxon = run_panel(
            client, _panel(review_progress, "Validated and dubious per taxon"), ALL, {}, **window
        )
        actual = {s.tags["taxon"]: tuple(s.values[0][1:]) for s in per_taxon["A"]}
        assert actual == per_label and per_label.get("detritus", (0,))[0] > 0
        totals = run_panel(client, _panel(review_progress, "Review totals"), ALL, {}, **window)
        (row,) = totals["A"][0].rows()
        validated, n = sum(v[0] for v in per_label.values()), sum(map(sum, per_label.values()))
        assert (row["validated"], row["objects"]) == (validated, n)
        assert row["validated share"] == pytest.approx(validated / n)
