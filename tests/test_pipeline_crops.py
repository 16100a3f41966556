"""The crop store's writes beside the loop (issue 26): a batch's crops are written on the crop
thread while it is inferred, those a head makes in its finish (a frame cut on the inference
thread) after it; either way durable before the records that name them are flushed. A real
:class:`CropStore` (SQLite) with the in-memory collaborators of ``test_pipeline.py``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pytest

from seawatch.contracts.crops import Crop, encode_crop
from seawatch.contracts.frames import Frame
from seawatch.contracts.task import PreparedFrame, TaskInputs, TaskResult
from seawatch.storage.crop_store import CropStore
from tests.heads import WholeFrameHead
from tests.test_pipeline import Event, first, good, rig


class ViewsHead(WholeFrameHead):
    """Keeps each frame's view: made in ``prepare`` for even offsets, in ``finish`` for odd
    ones (as the plankton head does for a frame the segmentation model cuts)."""

    def __init__(self) -> None:
        super().__init__("toy")
        self.digests: dict[str, int] = {}  # view digest -> the frame's offset

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        inputs = super().prepare(frame, image)
        if frame.ref.offset % 2:
            inputs.pending = image  # its view comes in finish
        else:
            inputs.views = [self._view(frame.ref.offset, image)]
        return inputs

    def finish(
        self, frames: Sequence[PreparedFrame], outputs: np.ndarray, infer_ms: float
    ) -> list[TaskResult]:
        for p in frames:
            if p.pending is not None:
                p.views = [self._view(p.frame.ref.offset, p.pending)]
        return super().finish(frames, outputs, infer_ms)

    def _view(self, offset: int, image: np.ndarray) -> Crop:
        view = encode_crop(image)
        self.digests[view.digest] = offset
        return view


class SlowCropStore(CropStore):
    """A real crop store that takes its time and logs the offsets of what it made durable."""

    def __init__(self, path, log: list[Event], digests: dict[str, int]) -> None:
        super().__init__(path)
        self.log, self.digests = log, digests

    def put(self, crops: Sequence[Crop], *, now_ns: int | None = None) -> None:
        time.sleep(0.03)  # a slow fsync: a flush that did not wait for it would come first
        super().put(crops, now_ns=now_ns)
        self.log.append(("crops", tuple(self.digests[c.digest] for c in crops)))


@pytest.mark.parametrize("depth", [0, 2])
def test_every_crop_is_durable_before_the_records_that_name_it(tmp_path, depth: int) -> None:
    head, log = ViewsHead(), []
    store = SlowCropStore(tmp_path / "crops.db", log, head.digests)
    r = rig([good(i) for i in range(10)], depth, head, log, crops=store)
    try:
        r.run(limit_s=5.0)
        assert r.source.committed == list(range(10))
        for offset in range(10):
            assert first(r.log, "crops", offset) < first(r.log, "flush", offset), offset
        assert sorted(head.digests.values()) == list(range(10))
        assert all(store.get(digest) is not None for digest in head.digests)
    finally:
        store.close()
