"""The daemon with ``ingest.segmentation.method: model`` on the real broker and the committed
segmentation artifact: full frames cut by the model (its network on the cutter's own thread,
instances and quality on the inference thread), ROI frames beside them, every
frame stored once, full frames with their segmentation quality in the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.helpers import publish_synthetic, run_until, settings_for

pytestmark = pytest.mark.integration
SEGMENTATION = Path(__file__).resolve().parents[2] / "models" / "segmentation"


def test_full_frames_cut_by_the_model_are_stored_with_their_quality(
    tmp_path, broker, unique, model_dir
):
    if not (SEGMENTATION / "card.json").is_file():
        pytest.skip("models/segmentation is not in this checkout")
    settings = settings_for(
        tmp_path,
        broker,
        unique,
        model_dir,
        ingest__segmentation__method="model",
        ingest__segmentation__model_dir=str(SEGMENTATION),
    )
    n = 40
    assert publish_synthetic(settings, n, full_share=0.3) == 0
    stats = run_until(settings, n)
    assert stats.frames == n and stats.dead_letters == 0
    db = sqlite3.connect(settings.storage.local.path)
    rows = db.execute("SELECT frame_kind, n_objects, segmentation_quality FROM frames").fetchall()
    assert len(rows) == n
    full = [r for r in rows if r[0] == "full"]
    roi = [r for r in rows if r[0] == "roi"]
    assert full and roi
    assert all(r[2] is None for r in roi)  # the threshold measures ROI frames
    scored = [r for r in full if r[1] > 0]
    assert scored and all(0.0 <= r[2] <= 1.0 for r in scored)
    stored = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
    assert stored == sum(r[1] for r in rows) == stats.objects
