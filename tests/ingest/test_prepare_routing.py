"""The prepare stage routes by task: plankton is segmented, otolith/fish go whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.config import IngestSettings
from seawatch.contracts.errors import FrameError
from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.ingest.prepare import FramePreparer


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


def _whole(image: np.ndarray) -> np.ndarray:
    """A stand-in task input: the mean colour, to see the decoded image arrive whole."""
    return np.asarray(image, np.float32).reshape(-1, image.shape[-1]).mean(0)


def test_otolith_frames_go_whole_to_their_task_input_and_keep_a_thumbnail():
    image = np.zeros((600, 800, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    preparer = FramePreparer(IngestSettings(), input_size=64, whole_frame={"otolith": _whole})
    prepared = preparer.prepare_frame(_frame("otolith", image))
    assert prepared.objects == [] and len(prepared.crops) == 1
    np.testing.assert_allclose(prepared.crops[0], [0, 0, 200])  # not segmented, not gray
    assert prepared.thumbnail is not None and max(prepared.thumbnail.shape[:2]) == 384


def test_fish_frames_keep_no_thumbnail():
    image = np.full((100, 300, 3), 90, np.uint8)
    preparer = FramePreparer(IngestSettings(), input_size=64, whole_frame={"fish": _whole})
    prepared = preparer.prepare_frame(_frame("fish", image))
    assert len(prepared.crops) == 1 and prepared.thumbnail is None


def test_a_task_without_a_model_is_refused_with_the_setting_to_change():
    preparer = FramePreparer(IngestSettings(), input_size=64)
    with pytest.raises(FrameError, match=r"inference\.otolith_model_dir") as info:
        preparer.prepare_frame(_frame("otolith", np.zeros((32, 32, 3), np.uint8)))
    assert info.value.stage == "route" and info.value.field == "task"


def test_a_task_input_that_rejects_the_image_is_a_prepare_error():
    def picky(image: np.ndarray) -> np.ndarray:
        raise ValueError("needs colour")

    preparer = FramePreparer(IngestSettings(), input_size=64, whole_frame={"fish": picky})
    with pytest.raises(FrameError, match="fish input: needs colour") as info:
        preparer.prepare_frame(_frame("fish", np.zeros((32, 32), np.uint8)))
    assert info.value.stage == "prepare"
