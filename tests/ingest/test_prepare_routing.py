"""The prepare stage hands each frame to the head of its task, and refuses a task no head
serves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.config import IngestSettings
from seawatch.contracts.errors import FrameError
from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.ingest.prepare import FramePreparer
from tests.heads import WholeFrameHead, plankton_preparing_head


def _frame(task: str, image: np.ndarray) -> Frame:
    ok, data = cv2.imencode(".png", image)
    assert ok
    meta = FrameMeta(
        instrument="bench-1",
        task=task,
        captured_at_ns=1,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
    )
    return Frame(
        meta=meta, ref=SourceRef(f"frames.{task}", 0, 0), payload=data.tobytes(), broker_ts_ms=0
    )


def _mean_colour(image: np.ndarray) -> np.ndarray:
    """A stand-in task input: the mean colour, to see the decoded image arrive whole."""
    return np.asarray(image, np.float32).reshape(-1, image.shape[-1]).mean(0)


def test_a_frame_goes_whole_to_its_own_head_which_may_keep_a_thumbnail():
    image = np.zeros((600, 800, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    head = WholeFrameHead("otolith", _mean_colour, keep_thumbnail=True)
    preparer = FramePreparer(IngestSettings(), {"otolith": head, "fish": WholeFrameHead("fish")})
    prepared = preparer.prepare_frame(_frame("otolith", image))
    assert prepared.objects == [] and len(prepared.crops) == 1
    np.testing.assert_allclose(prepared.crops[0], [0, 0, 200])  # not segmented, not gray
    assert prepared.thumbnail is not None and max(prepared.thumbnail.shape[:2]) == 384


def test_a_head_without_evidence_keeps_no_thumbnail():
    image = np.full((100, 300, 3), 90, np.uint8)
    preparer = FramePreparer(IngestSettings(), {"fish": WholeFrameHead("fish", _mean_colour)})
    prepared = preparer.prepare_frame(_frame("fish", image))
    assert len(prepared.crops) == 1 and prepared.thumbnail is None


def test_plankton_frames_are_measured_and_cropped_by_their_head():
    image = np.full((120, 100), 220, np.uint8)
    image[40:80, 30:70] = 40  # one dark object
    preparer = FramePreparer(IngestSettings(), {"plankton": plankton_preparing_head()})
    prepared = preparer.prepare_frame(_frame("plankton", image))
    assert len(prepared.objects) == 1 and prepared.crops[0].shape == (64, 64)
    assert prepared.objects[0].morph.area_px > 1000


def test_a_task_without_a_model_is_refused_with_the_setting_to_change():
    preparer = FramePreparer(IngestSettings(), {"fish": WholeFrameHead("fish")})
    with pytest.raises(FrameError, match=r"enable tasks\.otolith") as info:
        preparer.prepare_frame(_frame("otolith", np.zeros((32, 32, 3), np.uint8)))
    assert info.value.stage == "route" and info.value.field == "task"


def test_a_task_input_that_rejects_the_image_is_a_prepare_error():
    def picky(image: np.ndarray) -> np.ndarray:
        raise ValueError("needs colour")

    preparer = FramePreparer(IngestSettings(), {"fish": WholeFrameHead("fish", picky)})
    with pytest.raises(FrameError, match="fish input: needs colour") as info:
        preparer.prepare_frame(_frame("fish", np.zeros((32, 32), np.uint8)))
    assert info.value.stage == "prepare"
