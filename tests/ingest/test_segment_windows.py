"""Where the segmentation network runs: proposal windows around what a frame holds, and the
maps stitched from them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.ingest.segment_model import ModelInput
from seawatch.ingest.segment_windows import (
    PROPOSAL_LEVEL,
    Window,
    network_maps,
    proposal_windows,
)

STRIDE = 32


def _input(h: int = 256, w: int = 320) -> ModelInput:
    return ModelInput(np.zeros((h, w), np.uint8), h, w)


def _blob(made: ModelInput, cx: int, cy: int, r: int, value: int) -> None:
    cv2.circle(made.signal, (cx, cy), r, value, -1)


def _local(batch: np.ndarray) -> np.ndarray:
    """A stand-in network whose output depends on its 7 x 7 neighbourhood (zero padded at
    the input's edges, as a network's convolutions are): box mean and its square."""
    out = np.zeros((len(batch), 2, *batch.shape[2:]), np.float32)
    for k, x in enumerate(batch[:, 0]):
        mean = cv2.boxFilter(x, -1, (7, 7), borderType=cv2.BORDER_CONSTANT)
        out[k, 0], out[k, 1] = mean / 255.0, (mean / 255.0) ** 2
    return out


def test_an_empty_frame_runs_nothing_and_its_maps_are_background():
    made = _input()
    made.signal[:] = 2  # under the proposal level everywhere: water and its noise
    assert proposal_windows(made, STRIDE) == []
    assert not network_maps(_local, made, []).any()


def test_each_blob_lies_whole_in_a_stride_sized_window_inside_the_frame():
    made = _input()
    _blob(made, 40, 40, 10, 120)
    _blob(made, 250, 200, 6, int(PROPOSAL_LEVEL) + 4)  # faint: still proposed
    _blob(made, 310, 250, 12, 90)  # at the corner: the window moves inside the frame
    windows = proposal_windows(made, STRIDE)
    assert len(windows) == 3
    for cx, cy, r in ((40, 40, 10), (250, 200, 6), (310, 250, 12)):
        (hit,) = [w for w in windows if w.x0 <= cx < w.x1 and w.y0 <= cy < w.y1]
        assert hit.x0 <= max(0, cx - r) and min(320, cx + r + 1) <= hit.x1
        assert hit.y0 <= max(0, cy - r) and min(256, cy + r + 1) <= hit.y1
        assert (hit.x1 - hit.x0) % STRIDE == 0 and (hit.y1 - hit.y0) % STRIDE == 0
        assert hit.x0 >= 0 and hit.x1 <= 320 and hit.y0 >= 0 and hit.y1 <= 256
    assert sum(w.area for w in windows) < 0.3 * made.signal.size


def test_specks_are_not_proposed_and_a_busy_frame_is_run_whole():
    made = _input()
    made.signal[::16, ::16] = 200  # single hot pixels: specks, not objects
    assert proposal_windows(made, STRIDE) == []
    for y in range(20, 256, 40):
        for x in range(20, 320, 40):
            _blob(made, x, y, 5, 100)
    assert proposal_windows(made, STRIDE) == [Window(0, 0, 320, 256)]


def test_stitched_maps_equal_the_whole_frame_run_on_every_object():
    made = _input()
    # Two objects near each other: their windows overlap, and one object crosses the
    # other's window border; both must come out as in the whole-frame run.
    _blob(made, 100, 100, 14, 150)
    _blob(made, 128, 118, 9, 60)
    _blob(made, 260, 60, 8, 40)
    windows = proposal_windows(made, STRIDE)
    assert len(windows) >= 2 and len(windows) < 4
    stitched = network_maps(_local, made, windows)
    whole = _local(made.signal[None, None].astype(np.float32))[0]
    near = cv2.dilate((made.signal > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    np.testing.assert_allclose(stitched[:, near], whole[:, near], atol=1e-6)
    assert not stitched[:, made.signal.shape[0] // 2 + 60 :, :200].any()  # no window there


def test_a_whole_frame_window_is_one_plain_run():
    made = _input(64, 96)
    _blob(made, 30, 30, 10, 100)
    calls = []

    def run(batch):
        calls.append(batch.shape)
        return _local(batch)

    maps = network_maps(run, made, [Window(0, 0, 96, 64)])
    assert calls == [(1, 1, 64, 96)]
    np.testing.assert_array_equal(maps, _local(made.signal[None, None].astype(np.float32))[0])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="stride"):
        proposal_windows(_input(), 0)
