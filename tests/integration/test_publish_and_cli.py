"""`seawatch publish DIR` (the instrument bridge), claim checks, and the CLI's errors."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from seawatch.contracts.frames import FrameKind
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import directory_messages, publish_messages
from seawatch.storage.crop_store import CropStore
from seawatch.storage.local_store import open_readonly
from tests.integration.helpers import run_until, settings_for

pytestmark = pytest.mark.integration


def _write_images(folder, n: int) -> None:
    rng = np.random.default_rng(5)
    folder.mkdir()
    for i in range(n):
        image = np.full((80, 120), 215, np.uint8)
        cv2.ellipse(image, (60, 40), (int(rng.integers(15, 35)), 12), 0, 0, 360, 60, -1)
        ext = (".png", ".jpg", ".tif")[i % 3]
        cv2.imwrite(str(folder / f"roi_{i:03d}{ext}"), image)


def test_published_folder_is_processed_with_csv_metadata_and_claim_checks(
    tmp_path, broker, unique, model_dir
):
    folder = tmp_path / "images"
    _write_images(folder, 12)
    meta = tmp_path / "meta.csv"
    with meta.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "station", "depth-m"])
        writer.writerow(["roi_000.png", "st-99", "42.5"])
    settings = settings_for(
        tmp_path, broker, unique, model_dir, ingest__claim_check_roots=[str(folder)]
    )
    messages = directory_messages(
        folder,
        instrument="flowcam-9",
        task="plankton",
        frame_kind=FrameKind.ROI,
        cruise="c1",
        pixel_size_um=2.0,
        metadata_csv=meta,
        claim_check_over=1000,
    )
    claim_checks = [m for m in messages if dict(m.raw_headers)["content-type"] == b"text/uri-list"]
    assert 0 < len(claim_checks) < len(messages)
    ensure_topics(broker.bootstrap_servers, [*settings.kafka.topics], 3)
    publisher = Publisher(broker.bootstrap_servers)
    publish_messages(publisher, settings.kafka.topics[0], messages)
    publisher.close()
    stats = run_until(settings, len(messages))
    assert stats.frames == len(messages) and stats.dead_letters == 0
    db = open_readonly(settings.storage.local.path)
    rows = dict(db.execute("SELECT station, COUNT(*) FROM frames GROUP BY station").fetchall())
    assert rows == {"st-99": 1, "none": len(messages) - 1}
    depth = db.execute("SELECT depth_m FROM frames WHERE station='st-99'").fetchone()[0]
    assert depth == 42.5
    esd = db.execute("SELECT MIN(esd_um), MAX(esd_um) FROM objects").fetchone()
    assert 20 < esd[0] < esd[1] < 200  # 2 µm pixels: ellipses of 24-70 px diameter
    # every object's crop is kept (durable before its record), as a PNG of its ROI
    digests = [d for (d,) in db.execute("SELECT crop FROM objects")]
    crops = CropStore(settings.storage.local.crops_path, readonly=True)
    found = crops.many(digests)
    assert len(digests) == len(messages) and set(found) == set(digests)
    roi = cv2.imdecode(np.frombuffer(found[digests[0]], np.uint8), cv2.IMREAD_UNCHANGED)
    assert roi.shape == (80, 120)
    # an ROI sent inline as PNG or JPEG is kept byte for byte as it came (no re-encoding);
    # TIFF and claim-checked ROIs are encoded as PNG
    types = [dict(m.raw_headers)["content-type"] for m in messages]
    as_sent = [
        m for m, t in zip(messages, types, strict=True) if t in (b"image/png", b"image/jpeg")
    ]
    assert 0 < len(as_sent) < len(messages)
    assert {hashlib.sha256(m.value).hexdigest() for m in as_sent} <= set(digests)
    png = sum(found[d][:4] == b"\x89PNG" for d in digests)
    assert png == len(messages) - sum(t == b"image/jpeg" for t in types)


def _seawatch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seawatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_bad_config_fails_at_start_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inference:\n  max_batch: -3\nkafka:\n  auto_offset_reset: sometimes\n")
    result = _seawatch("--config", str(bad), "config", "show")
    assert result.returncode == 2
    assert "inference.max_batch" in result.stderr and "kafka.auto_offset_reset" in result.stderr
    assert "'earliest' or 'latest'" in result.stderr
