"""Whole tank frames end to end (issue 28): the daemon on the real broker cuts a rendered
tank frame of three fish into three sightings, stores each (a replay overwrites them, never
adds), alerts on every new fish whatever its place in the frame, and writes one InfluxDB
point per sighting to the real VictoriaMetrics."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from seawatch.contracts.frames import FrameKind, FrameMeta, encode_headers
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.models.fish.synthetic import make_individual
from seawatch.models.fish.tank_scene import iou, render_scene
from seawatch.storage.local_store import open_readonly
from tests.integration.helpers import read_topic, run_until, settings_for

pytestmark = pytest.mark.integration


def _scene():
    """Three fish apart: a known gallery fish and two strangers (the strangers left of it
    or not, a new fish is second or third in its frame either way)."""
    fish = [make_individual(i, 0) for i in (3, 300, 301)]
    rng = np.random.default_rng(11)
    while True:
        scene = render_scene(fish, rng, n_fish=3, mirror_share=0, edge_share=0, overlap_share=0)
        boxes = [f.box for f in scene.fish]
        if all(iou(a, b) == 0 for k, a in enumerate(boxes) for b in boxes[k + 1 :]):
            return scene


def _publish(settings, image: np.ndarray, captured_at_ns: int) -> None:
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    meta = FrameMeta(
        "tank-cam-07", "fish", captured_at_ns, FrameKind.FULL, "image/png", cruise="MSM120"
    )
    ok, png = cv2.imencode(".png", image)
    assert ok
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        publisher.send(kafka.topics[0], png.tobytes(), b"tank-cam-07", encode_headers(meta))
        publisher.flush()
    finally:
        publisher.close()


def test_a_tank_frame_of_three_fish_is_stored_alerted_and_written_per_sighting(
    tmp_path, broker, unique, model_dir, fish_model_dir, victoria
):
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__topics=[f"t{unique}.frames.fish"],
        kafka__partitions=1,
        tasks__fish__model_dir=str(fish_model_dir),
        tasks__fish__options__whole_frames=True,
        tasks__fish__options__tracklets=False,
        storage__influx__url=victoria.url,
        alerts__topic=f"t{unique}.alerts",
        alerts__rules=[{"name": "new-fish", "kind": "new_individual", "severity": "info"}],
    )
    scene, at = _scene(), time.time_ns() - 10**9
    _publish(settings, scene.image, at)
    assert run_until(settings, 1).dead_letters == 0

    def stored():
        db = open_readonly(settings.storage.local.path)
        try:
            return db.execute(
                "SELECT idx, individual, new_individual, bbox_x, bbox_y, bbox_w, bbox_h "
                "FROM fish ORDER BY idx"
            ).fetchall()
        finally:
            db.close()

    rows = stored()
    assert [r[0] for r in rows] == [0, 1, 2]  # every fish, not only the first
    for fish in scene.fish:  # each drawn fish is a sighting with its box
        assert max(iou(fish.box, tuple(r[3:])) for r in rows) >= 0.5, (fish, rows)
    new = [(r[0], r[1]) for r in rows if r[2]]
    assert len(new) == 2 and any(k > 0 for k, _ in new), rows  # a new fish not first

    alerts = [
        json.loads(r.value)
        for r in read_topic(settings.kafka.bootstrap_servers, settings.alerts.topic, len(new))
    ]
    assert sorted((a["evidence"]["sighting"], a["subject"]) for a in alerts) == sorted(new)

    # the replay of the frame (same instrument and capture time): its rows, not three more
    _publish(settings, scene.image, at)
    assert run_until(settings, 1).dead_letters == 0
    assert stored() == rows

    series = victoria.export('{__name__="fish_similarity"}')
    tags = sorted(s["metric"].get("sighting", "") for s in series)
    assert tags == ["", "1", "2"]  # three series: no sighting overwrote another
    assert all(set(s["timestamps"]) == {at // 10**6} for s in series)
