"""The daemon serves all three tasks from one stream on a real broker (Tansu).

Otolith and fish frames are published to their own topics (``frames.otolith``,
``frames.fish``), plankton to ``frames.plankton``; the committed models score them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from seawatch.demo import topics_by_task
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from seawatch.storage.local_store import open_readonly
from tests.integration.helpers import read_topic, run_until, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def model_dirs(model_dir, otolith_model_dir, fish_model_dir):
    return model_dir, otolith_model_dir, fish_model_dir


def _settings(tmp_path, broker, unique, model_dirs, **overrides):
    model_dir, otolith_dir, fish_dir = model_dirs
    values = {
        "kafka__topics": [f"t{unique}.frames.{task}" for task in ("plankton", "otolith", "fish")],
        "tasks__otolith__model_dir": str(otolith_dir),
        "tasks__fish__model_dir": str(fish_dir),
        # independent sightings (no camera passes): each decided alone, as before tracklets;
        # the tracklet rule is tested on passes (tests/models/test_fish_open_set.py, scale-out)
        "tasks__fish__options__tracklets": False,
    }
    return settings_for(tmp_path, broker, unique, model_dir, **(values | overrides))


def _publish(settings, n: int, seed: int = 5):
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    messages = list(
        synthetic_stream(
            n, seed=seed, start_ns=time.time_ns() - n * 10**6, otolith_share=0.35, fish_share=0.35
        )
    )
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        publish_messages(
            publisher, kafka.topics[0], messages, topics_by_task=topics_by_task(kafka.topics)
        )
    finally:
        publisher.close()
    return messages


def test_plankton_otolith_and_fish_frames_are_each_served_by_their_model(
    tmp_path, broker, unique, model_dirs
):
    settings = _settings(tmp_path, broker, unique, model_dirs)
    messages = _publish(settings, 80)
    stats = run_until(settings, len(messages))
    assert stats.dead_letters == 0
    db = open_readonly(settings.storage.local.path)
    tasks = dict(db.execute("SELECT task, COUNT(*) FROM frames GROUP BY task").fetchall())
    expected = {t: sum(m.meta.task == t for m in messages) for t in ("plankton", "otolith", "fish")}
    assert tasks == expected and min(expected.values()) >= 15

    # otoliths: one row per specimen; the flagged ones have their evidence on disk
    truth = {m.meta.specimen_id: m.truth for m in messages if m.meta.task == "otolith"}
    rows = db.execute(
        "SELECT specimen_id, anomaly, score, threshold, thumbnail, heatmap FROM otolith"
    )
    rows = rows.fetchall()
    assert {r[0] for r in rows} == set(truth)
    flagged = [r for r in rows if r[1]]
    assert all(r[2] > r[3] for r in flagged) and all(r[2] <= r[3] for r in rows if not r[1])
    evidence = settings.storage.local.evidence_root
    for _, _, _, _, thumb, heat in flagged:
        assert (evidence / thumb).stat().st_size > 1000 and (evidence / heat).stat().st_size > 1000
    # (how well the otolith model separates defects is its card's and evaluate's job)

    # fish: known fish are matched to their gallery id, never to another fish; strangers
    # are enrolled as new provisional ids, which no known fish is matched to
    fish = db.execute(
        "SELECT f.individual, f.new_individual, f.provisional, fr.captured_at_ns "
        "FROM fish f JOIN frames fr ON fr.uid = f.frame_uid"
    ).fetchall()
    truth_at = {m.meta.captured_at_ns: m.truth for m in messages if m.meta.task == "fish"}
    assert len(fish) == len(truth_at)
    known = {name for name in truth_at.values() if int(name.rsplit("-", 1)[1]) < 240}
    for individual, new, provisional, captured in fish:
        true = truth_at[captured]
        if true in known:
            assert individual in (true, *[r[0] for r in fish if r[1]])  # own id or new, never wrong
        else:
            assert individual not in known  # a stranger is never taken for a known fish
        assert bool(new) <= bool(provisional)
    on_known = [r[0] == truth_at[r[3]] for r in fish if truth_at[r[3]] in known]
    assert np.mean(on_known) >= 0.75  # ~90 % at the 1 % false-match threshold (fish card)
    strangers = {truth_at[r[3]] for r in fish} - known
    assert strangers and all(
        any(r[1] for r in fish if truth_at[r[3]] == s) for s in strangers
    )  # each stranger was enrolled at least once
    assert settings.storage.local.fish_gallery_path.is_file()


def test_a_task_without_a_model_goes_to_the_dlq_and_the_others_go_on(
    tmp_path, broker, unique, model_dirs
):
    settings = _settings(tmp_path, broker, unique, model_dirs, tasks__fish__enabled=False)
    messages = _publish(settings, 30, seed=9)
    n_fish = sum(m.meta.task == "fish" for m in messages)
    stats = run_until(settings, len(messages))
    assert stats.dead_letters == n_fish > 0
    dlq = read_topic(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, n_fish)
    assert {h["error-stage"] for h in (dict(r.headers) for r in dlq)} == {b"route"}
    db = open_readonly(settings.storage.local.path)
    assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == len(messages) - n_fish
