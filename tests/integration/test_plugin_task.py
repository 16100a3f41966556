"""A fourth task, defined in tests/ (no file under src/ knows it), served end to end on the
real broker: its own topic, its own head and model, records in the store with its fields and
the model's release, bad frames to the DLQ, and the built-in tasks served beside it."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.frames import FrameKind, FrameMeta, encode_headers
from seawatch.daemon import build_daemon
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.registry import names, plugin
from seawatch.storage.local_store import open_readonly
from tests.integration.helpers import publish_synthetic, read_topic, settings_for
from tests.toy_task import make_toy_model

pytestmark = pytest.mark.integration


def _toy_settings(tmp_path, broker, unique, model_dir, **overrides):
    toy_dir = tmp_path / "toy-model"
    card = make_toy_model(toy_dir)
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        kafka__topics=None,  # from the tasks: each enabled task's topic
        tasks={
            "plankton": {"topic": f"t{unique}.frames.plankton"},
            "otolith": {"enabled": False},
            "fish": {"enabled": False},
            "toy": {
                "plugin": "tests.toy_task:PLUGIN",
                "model_dir": str(toy_dir),
                "topic": f"t{unique}.frames.toy",
                "options": {"bright_above": 100},
            },
        },
        **overrides,
    )
    return settings, card


def _publish_toy(settings, levels: list[int], broken: int) -> None:
    """One 32 x 24 gray PNG frame per level (uniform brightness), then ``broken`` frames
    whose value is not an image."""
    topic = settings.tasks["toy"].topic
    publisher = Publisher(settings.kafka.bootstrap_servers)
    try:
        for i, level in enumerate([*levels, *[None] * broken]):
            meta = FrameMeta(
                instrument="toy-cam-1",
                task="toy",
                captured_at_ns=time.time_ns() - 10**9 + i * 1000,
                frame_kind=FrameKind.ROI,
                content_type="image/png",
            )
            if level is None:
                value = b"not a png at all"
            else:
                ok, data = cv2.imencode(".png", np.full((24, 32), level, np.uint8))
                assert ok
                value = data.tobytes()
            publisher.send(topic, value=value, key=b"toy-cam-1", headers=encode_headers(meta))
        publisher.flush()
    finally:
        publisher.close()


def test_a_plug_in_task_from_outside_src_is_served_end_to_end(tmp_path, broker, unique, model_dir):
    settings, card = _toy_settings(tmp_path, broker, unique, model_dir)
    kafka = settings.kafka
    assert sorted(kafka.topics) == sorted([f"t{unique}.frames.plankton", f"t{unique}.frames.toy"])
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    levels = [20, 60, 140, 230, 90, 180]
    _publish_toy(settings, levels, broken=2)
    plankton_broken = publish_synthetic(settings, 30, seed=3)  # to the first topic: plankton

    daemon = build_daemon(settings)
    try:
        assert set(daemon.pipeline.router.heads) == {"plankton", "toy"}
        stats = daemon.run(lambda s: s.processed >= len(levels) + 2 + 30)
    finally:
        daemon.close()

    assert stats.dead_letters == 2 + plankton_broken
    db = open_readonly(settings.storage.local.path)
    rows = db.execute(
        "SELECT f.model, f.model_version, b.value, r.value FROM frames f "
        "JOIN task_outputs b ON b.frame_uid = f.uid AND b.name = 'brightness' "
        "JOIN task_outputs r ON r.frame_uid = f.uid AND r.name = 'bright' "
        "WHERE f.task = 'toy' ORDER BY f.captured_at_ns"
    ).fetchall()
    assert [round(r[2]) for r in rows] == levels  # the ONNX model's mean, frame by frame
    assert [bool(r[3]) for r in rows] == [v > 100 for v in levels]  # the task's own option
    assert {(r[0], r[1]) for r in rows} == {(card.name, card.release)}
    plankton = db.execute("SELECT COUNT(*) FROM frames WHERE task = 'plankton'").fetchone()[0]
    assert plankton == 30 - plankton_broken

    dead = read_topic(kafka.bootstrap_servers, kafka.dlq_topic, stats.dead_letters)
    toy_dead = [r for r in dead if r.topic == kafka.dlq_topic and dict(r.headers)["task"] == b"toy"]
    assert len(toy_dead) == 2
    assert all(dict(r.headers)["error-stage"] == b"decode" for r in toy_dead)
    assert all(r.value == b"not a png at all" for r in toy_dead)


def test_a_plug_in_task_is_found_through_its_settings_not_a_registry_edit(tmp_path):
    assert "toy" not in names()  # nothing under src/ knows it
    with pytest.raises(ConfigError, match=r"task 'toy' has no plug-in"):
        plugin("toy")
    assert plugin("toy", "tests.toy_task:PLUGIN").name == "toy"
    with pytest.raises(ConfigError, match=r"tasks\.toy\.plugin .* cannot be loaded"):
        plugin("toy", "tests.no_such_module:PLUGIN")
    with pytest.raises(ConfigError, match="plug-in of task 'toy', not 'plankton'"):
        plugin("plankton", "tests.toy_task:PLUGIN")


def test_a_bad_option_of_a_plug_in_task_fails_at_start_naming_it(
    tmp_path, broker, unique, model_dir
):
    settings, _ = _toy_settings(tmp_path, broker, unique, model_dir)
    toy = settings.tasks["toy"].model_copy(update={"options": {"bright_above": 999}})
    bad = settings.model_copy(update={"tasks": {**settings.tasks, "toy": toy}})
    with pytest.raises(ConfigError, match=r"tasks\.toy\.options\.bright_above"):
        build_daemon(bad)


def test_a_model_promoted_mid_stream_is_swapped_in_without_loss_or_duplicates(
    tmp_path, broker, unique, model_dir
):
    """The toy task served from a model store; a new release promoted while the daemon
    consumes. Every frame is stored once, by exactly one of the two models, and the switch
    happens once per partition (a batch boundary): never back and forth."""
    import threading

    from seawatch.inference.model_store import promote

    store = tmp_path / "store"
    make_toy_model(tmp_path / "v1", version="0.1.0")
    make_toy_model(tmp_path / "v2", version="0.2.0", scale=2.0)
    first, second = promote(store, tmp_path / "v1"), None
    settings, _ = _toy_settings(
        tmp_path,
        broker,
        unique,
        model_dir,
        inference__swap_check_s=0.05,
        kafka__max_poll_records=8,
    )
    toy = settings.tasks["toy"].model_copy(update={"model_store": store, "swap_max_drop": 1.0})
    settings = settings.model_copy(update={"tasks": {**settings.tasks, "toy": toy}})
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    levels = [int(v) for v in np.random.default_rng(4).integers(10, 250, 400)]
    _publish_toy(settings, levels, broken=0)

    daemon = build_daemon(settings)
    promoted = threading.Event()

    def should_stop(stats) -> bool:
        nonlocal second
        if stats.frames >= 120 and not promoted.is_set():
            second = promote(store, tmp_path / "v2")  # mid-stream, from the loop's thread
            promoted.set()
        return stats.processed >= len(levels)

    try:
        stats = daemon.run(should_stop)
        swaps = daemon.pipeline.models.swaps
    finally:
        daemon.close()
    assert promoted.is_set() and stats.dead_letters == 0
    assert [s["release"] for s in swaps] == [second.release]
    db = open_readonly(settings.storage.local.path)
    rows = db.execute(
        'SELECT f.uid, f.partition, f."offset", f.model_version, o.value FROM frames f '
        "JOIN task_outputs o ON o.frame_uid = f.uid AND o.name = 'brightness' "
        "WHERE f.task = 'toy' ORDER BY f.partition, f.\"offset\""
    ).fetchall()
    uids = [r[0] for r in rows]
    assert len(uids) == len(levels) and len(set(uids)) == len(uids)  # none lost, none twice
    versions = {r[3] for r in rows}
    assert versions == {first.release, second.release}
    scale = {first.release: 1.0, second.release: 2.0}
    for _, _, offset, version, brightness in rows:  # one instrument: one partition, in order
        assert brightness == pytest.approx(scale[version] * levels[offset], abs=0.01), offset
    for partition in {r[1] for r in rows}:
        order = [r[3] for r in rows if r[1] == partition]
        switched = [i for i in range(1, len(order)) if order[i] != order[i - 1]]
        assert len(switched) <= 1 and order[0] == first.release, partition
