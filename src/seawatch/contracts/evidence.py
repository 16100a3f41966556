"""Where a frame's evidence images go and how a thumbnail is made: names a task head gives
its evidence (pure functions), written by :class:`seawatch.storage.evidence.EvidenceStore`.

Files are named by task, instrument and capture time (the frame's uid), so a replayed frame
rewrites its own files. Paths in records are relative to the evidence root.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from seawatch.contracts.frames import FrameMeta

THUMBNAIL_SIDE = 384
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def evidence_paths(meta: FrameMeta, task: str) -> tuple[str, str]:
    """Relative paths of the thumbnail and the heat map overlay of one frame."""
    instrument = _UNSAFE.sub("_", meta.instrument).strip("._") or "instrument"
    stem = f"{task}/{instrument}/{meta.captured_at_ns}"
    return f"{stem}.jpg", f"{stem}_heatmap.jpg"


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A BGR uint8 copy of a decoded image whose longer side is at most ``side``."""
    if image.dtype == np.uint16:
        bits = max(8, int(image.max()).bit_length())
        image = (image >> (bits - 8)).astype(np.uint8)
    h, w = image.shape[:2]
    # Shrunk before the colour conversion: the interpolation works on each channel alone, so
    # the pixels are the same and a gray ROI is resized once, not three times (hot path).
    # Bilinear, as it always was: the INTER_AREA once passed here went in as ``dst``.
    if max(h, w) > side:
        f = side / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


__all__ = ["THUMBNAIL_SIDE", "evidence_paths", "thumbnail"]
