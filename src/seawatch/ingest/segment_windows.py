"""Where the segmentation network runs on a full frame: windows around what the frame holds.

Plankton frames are mostly empty water, and the network's cost grows with the pixels it
sees. A cheap, permissive proposal picks the windows (issue 27):

1. **Proposal** (:func:`proposal_windows`): the network input (the flat-field signal at the
   network's scale, objects bright, water ~0) blurred 3 x 3 and cut at a low level,
   :data:`PROPOSAL_LEVEL` (a faint marine-snow flock or a defocused object is still over it);
   each blob whose tight box holds at least :data:`MIN_BLOB_PX` pixels gives that box grown by
   ``margin`` pixels of context on every side, then to whole multiples of the network's
   stride (its input sides must be), centred on the blob and moved inside the frame. A
   blob always lies whole in its window, so an object is never cut by a window's edge.
2. Windows inside another window are dropped; when the windows would cover more than
   :data:`FULL_SHARE` of the frame, the frame is run whole instead (one call, no overlap).
3. **Maps** (:func:`network_maps`): windows of one shape are stacked into one batch; where
   windows overlap, each pixel takes the output of the window it lies deepest in (its
   distance to the window's edges inside the frame: near an edge the network sees zero
   padding instead of the water beyond). Every blob lies at least ``margin`` pixels deep
   in its own window, so an object crossing another window's edge keeps the output of
   the window that holds it whole. Pixels no window covers are background (foreground 0,
   centre-ness 0).

The rest of the cut (instances, enlargement, measures) is the same as for a whole-frame run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

from seawatch.ingest.segment_model import ModelInput

PROPOSAL_LEVEL = 3.0  # signal (0..255) of the 3x3-blurred network input: something is there
MIN_BLOB_PX = 10  # network px in a blob's box: fewer is a speck (one hot pixel, blurred: 9)
WINDOW_MARGIN = 12  # network px of context around each blob, before rounding to the stride
FULL_SHARE = 0.8  # windows covering more of the frame than this: run the frame whole
_DEEP_ENOUGH = 64.0  # px: this deep in a window (or at the frame's own edge) is deep enough


class Window(NamedTuple):
    """A window of the network input, in network pixels: columns x0..x1, rows y0..y1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        """Pixels in the window."""
        return (self.x1 - self.x0) * (self.y1 - self.y0)


def _fit(lo: int, hi: int, stride: int, limit: int) -> tuple[int, int]:
    """[lo, hi) grown to a multiple of ``stride``, centred, moved inside [0, limit)."""
    size = min(limit, -(-(hi - lo) // stride) * stride)
    start = round((lo + hi - size) / 2.0)
    start = max(0, min(limit - size, start - start % 2))  # even: the stem's stride-2 grid
    return start, start + size


def proposal_windows(
    made: ModelInput,
    stride: int,
    *,
    level: float = PROPOSAL_LEVEL,
    margin: int = WINDOW_MARGIN,
) -> list[Window]:
    """The windows of ``made``'s (padded) network input that the network runs on; one
    window covering all of it when there is too much in the frame for windows to pay."""
    signal = made.signal
    full_h, full_w = signal.shape
    whole = [Window(0, 0, full_w, full_h)]
    if stride < 1 or margin < 0:
        msg = f"need stride >= 1 and margin >= 0; got stride={stride}, margin={margin}"
        raise ValueError(msg)
    seen = signal[: made.height, : made.width]
    active = (cv2.blur(seen, (3, 3)) > level).astype(np.uint8)
    # Outer outlines give each blob's box (a blob in another's hole lies in its box anyway),
    # at a tenth of the cost of connected components with their statistics.
    outlines, _ = cv2.findContours(active, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rects = [cv2.boundingRect(c) for c in outlines]
    rects = [(x, y, w, h) for x, y, w, h in rects if w * h >= MIN_BLOB_PX]
    if not rects:
        return []
    boxes = np.empty((len(rects), 4), np.int64)
    for k, (x, y, w, h) in enumerate(rects):
        x0, x1 = _fit(x - margin, x + w + margin, stride, full_w)
        y0, y1 = _fit(y - margin, y + h + margin, stride, full_h)
        boxes[k] = (x0, y0, x1, y1)
    boxes = np.unique(boxes, axis=0)
    # A window inside another adds nothing: drop it (of two equal ones, unique kept one).
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    inside = (
        (x0[:, None] >= x0[None])
        & (y0[:, None] >= y0[None])
        & (x1[:, None] <= x1[None])
        & (y1[:, None] <= y1[None])
    )
    np.fill_diagonal(inside, False)
    boxes = boxes[~inside.any(axis=1)]
    windows = [Window(*map(int, b)) for b in boxes]
    if sum(w.area for w in windows) > FULL_SHARE * full_h * full_w:
        return whole
    return windows


def _depth_in(window: Window, shape: tuple[int, int]) -> np.ndarray:
    """Per pixel of ``window``: how deep it lies in it, 1 + its distance to the nearest edge
    that lies inside the frame (the frame's own edges are padded in a whole-frame run too)."""
    full_h, full_w = shape
    far = np.float32(_DEEP_ENOUGH)

    def ramp(lo: int, hi: int, limit: int) -> np.ndarray:
        step = np.arange(hi - lo, dtype=np.float32)
        up = step + 1 if lo > 0 else far
        down = (hi - lo) - step if hi < limit else far
        return np.minimum(np.minimum(up, down), far)

    rows = ramp(window.y0, window.y1, full_h)
    cols = ramp(window.x0, window.x1, full_w)
    return np.minimum.outer(rows, cols)


def network_maps(
    run: Callable[[np.ndarray], np.ndarray], made: ModelInput, windows: list[Window]
) -> np.ndarray:
    """The network's 2 x H x W maps of ``made`` (padding included) from its runs on
    ``windows``: ``run`` takes an N x 1 x h x w float32 batch and returns N x 2 x h x w."""
    signal = made.signal
    shape = signal.shape
    maps = np.zeros((2, *shape), np.float32)
    if not windows:
        return maps
    if len(windows) == 1 and windows[0].area == signal.size:
        return np.asarray(run(signal[None, None].astype(np.float32))[0], np.float32)
    depth = np.zeros(shape, np.float32)  # how deep in its window each output was made
    by_shape: dict[tuple[int, int], list[Window]] = {}
    for window in windows:
        by_shape.setdefault((window.y1 - window.y0, window.x1 - window.x0), []).append(window)
    for group in by_shape.values():
        batch = np.stack([signal[w.y0 : w.y1, w.x0 : w.x1] for w in group])[:, None]
        out = run(batch.astype(np.float32))
        for window, m in zip(group, out, strict=True):
            wy, wx = slice(window.y0, window.y1), slice(window.x0, window.x1)
            edge = _depth_in(window, shape)
            deeper = edge > depth[wy, wx]
            maps[:, wy, wx][:, deeper] = m[:, deeper]
            depth[wy, wx][deeper] = edge[deeper]
    return maps


__all__ = [
    "FULL_SHARE",
    "MIN_BLOB_PX",
    "PROPOSAL_LEVEL",
    "WINDOW_MARGIN",
    "Window",
    "network_maps",
    "proposal_windows",
]
