"""A plankton model trained on a user's 96 px colour folder, served by the daemon on the real
broker: colour ROI frames and a colour full frame in, one stored object per organism with
the answer the graph gives on the training path's preprocessing of the same pixels."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from seawatch.contracts.card import ONNX_FILE
from seawatch.contracts.frames import FrameKind, FrameMeta, encode_headers
from seawatch.contracts.preprocess import nchw, prepare_crop
from seawatch.daemon import build_daemon
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton
from seawatch.storage.local_store import open_readonly
from tests.integration.helpers import settings_for
from tests.models.user_folders import scaled, tint, write_folder

pytestmark = [pytest.mark.integration, pytest.mark.train]

HUES = {"reddish": ("copepod", -1.0), "bluish": ("copepod", 1.0)}


def _rois(n: int, seed: int) -> list[np.ndarray]:
    from seawatch.models.plankton.synthetic import render_roi

    rng = np.random.default_rng(seed)
    return [tint(scaled(render_roi("copepod", rng), 96), (-1.0, 1.0)[i % 2]) for i in range(n)]


def _full_frame() -> np.ndarray:
    """Two tinted discs on a light gray field."""
    frame = np.full((240, 320), 215, np.uint8)
    cv2.circle(frame, (80, 120), 22, 60, -1)
    cv2.circle(frame, (230, 110), 26, 70, -1)
    colour = tint(frame, 1.0)
    colour[:, 160:] = tint(frame, -1.0)[:, 160:]
    return colour


def test_a_96_px_colour_model_is_served_by_the_daemon(tmp_path, broker, unique):
    folder = write_folder(tmp_path / "data", HUES, 6, seed=8, side=96, colour=True)
    model = tmp_path / "model"
    card = train_plankton(
        model,
        data=PlanktonData(data_dir=folder, folds=0),
        params=FitParams(epochs=1, batch_size=8, adaptive=False, finetune="full"),
        device="cpu",
        command="test",
    )
    assert (card.input.size, card.input.channels) == (96, 3)
    settings = settings_for(tmp_path, broker, unique, model)
    kafka = settings.kafka
    ensure_topics(kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    images = [*_rois(4, seed=9), _full_frame()]
    publisher = Publisher(kafka.bootstrap_servers)
    try:
        for i, image in enumerate(images):
            meta = FrameMeta(
                instrument="flowcam-rgb",
                task="plankton",
                captured_at_ns=time.time_ns() - 10**9 + i * 1000,
                frame_kind=FrameKind.FULL if i == len(images) - 1 else FrameKind.ROI,
                content_type="image/png",
            )
            value = cv2.imencode(".png", image)[1].tobytes()
            publisher.send(kafka.topics[0], value=value, key=b"rgb", headers=encode_headers(meta))
        publisher.flush()
    finally:
        publisher.close()

    daemon = build_daemon(settings)
    try:
        stats = daemon.run(lambda s: s.processed >= len(images))
    finally:
        daemon.close()

    assert stats.dead_letters == 0
    db = open_readonly(settings.storage.local.path)
    rows = db.execute(
        "SELECT f.frame_kind, f.model_version, o.taxon, o.confidence, o.top_k, "
        "o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h FROM objects o "
        "JOIN frames f ON f.uid = o.frame_uid ORDER BY f.captured_at_ns, o.idx"
    ).fetchall()
    assert len(rows) == 4 + 2 and {r[1] for r in rows} == {card.release}
    backend = OnnxRuntimeBackend(model / ONNX_FILE, threads=1)
    try:
        for row, image in zip(rows[:4], images[:4], strict=True):
            probs = backend.run(nchw(prepare_crop(image, 96, 3)[None]))[0]
            assert row[3] == pytest.approx(float(probs.max()), abs=1e-4)
            assert json.loads(row[4])[0][0] == card.class_names[int(probs.argmax())]
        for row in rows[4:]:  # full frame: each object cut from the colour frame by its box
            x, y, w, h = row[5:9]
            crop = images[4][y : y + h, x : x + w]
            probs = backend.run(nchw(prepare_crop(crop, 96, 3)[None]))[0]
            assert row[3] == pytest.approx(float(probs.max()), abs=1e-4)
    finally:
        backend.close()
