"""Otolith and fish records: line protocol, local store rows, evidence files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.contracts.errors import StorageError
from seawatch.contracts.evidence import evidence_paths, thumbnail
from seawatch.contracts.frames import FrameKind, FrameMeta
from seawatch.contracts.records import FishRecord, OtolithRecord
from seawatch.storage.evidence import EvidenceStore
from seawatch.storage.line_protocol import frame_lines
from seawatch.storage.local_store import LocalStore, open_readonly
from tests.storage.factories import make_task_record

FLAGGED = OtolithRecord("MSM120-oto-1", 0.91, True, 0.5, "otolith/a.jpg", "otolith/a_h.jpg")
SIGHTING = FishRecord("fish-new-0001", 0.42, True, True)


def test_otolith_point_follows_the_storage_contract():
    lines = frame_lines(make_task_record("otolith", otolith=FLAGGED))
    assert len(lines) == 2 and lines[0].startswith("frames,")
    point = lines[1]
    assert point.startswith(
        "otolith,cruise=MSM120,instrument=otolith-scanner-01,model=otolith-model "
    )
    assert "score=0.91" in point and "anomaly=true" in point and "threshold=0.5" in point
    assert 'specimen_id="MSM120-oto-1"' in point  # an id is a field, never a tag
    assert "flagged=1i" in point and 'thumbnail="otolith/a.jpg"' in point
    assert "taxon=" not in point


def test_fish_point_keeps_identity_as_a_field():
    (_, point) = frame_lines(make_task_record("fish", fish=SIGHTING))
    assert point.startswith("fish,cruise=MSM120,instrument=tank-cam-03,model=fish-model ")
    assert 'individual="fish-new-0001"' in point and "new_individual=true" in point
    assert "similarity=0.42" in point


def test_local_store_keeps_otolith_and_fish_rows_and_replays_overwrite(tmp_path):
    store = LocalStore(tmp_path / "s.db")
    store.add(
        [
            make_task_record("otolith", 1, otolith=FLAGGED),
            make_task_record("fish", 2, fish=SIGHTING),
        ]
    )
    store.flush()
    replay = FishRecord("fish-new-0001", 0.97, False, True)
    store.add([make_task_record("fish", 2, fish=replay)])
    store.close()
    db = open_readonly(tmp_path / "s.db")
    assert db.execute("SELECT specimen_id, anomaly, thumbnail FROM otolith").fetchall() == [
        ("MSM120-oto-1", 1, "otolith/a.jpg")
    ]
    assert db.execute("SELECT individual, similarity, new_individual FROM fish").fetchall() == [
        ("fish-new-0001", 0.97, 0)
    ]
    assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 2


def _meta(instrument: str) -> FrameMeta:
    return FrameMeta(
        instrument=instrument,
        task="otolith",
        captured_at_ns=123,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
    )


def test_evidence_paths_are_safe_and_keyed_by_frame():
    thumb, heat = evidence_paths(_meta("../../etc/scanner 1"), "otolith")
    assert (
        thumb == "otolith/etc_scanner_1/123.jpg" and heat == "otolith/etc_scanner_1/123_heatmap.jpg"
    )
    assert ".." not in thumb


def test_evidence_is_written_atomically_and_readable(tmp_path):
    store = EvidenceStore(tmp_path / "evidence")
    image = thumbnail(np.full((900, 1200, 3), 180, np.uint8))
    assert max(image.shape[:2]) == 384
    path = store.write("otolith/x/1.jpg", image)
    assert cv2.imread(str(path)).shape == image.shape
    assert not list(path.parent.glob(".*.tmp"))
    gray16 = thumbnail(np.full((50, 40), 4000, np.uint16))
    assert gray16.dtype == np.uint8 and gray16.shape == (50, 40, 3)


def test_unwritable_evidence_dir_is_a_storage_error(tmp_path):
    blocker = tmp_path / "evidence"
    blocker.write_text("a file, not a directory")
    with pytest.raises(StorageError, match="evidence_dir"):
        EvidenceStore(blocker).write("otolith/x/1.jpg", np.zeros((4, 4, 3), np.uint8))
