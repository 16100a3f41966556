"""Evidence files for flagged samples: a thumbnail and a heat map beside the local store.

An alert or a dashboard row that says "this otolith is anomalous" links to what the model saw
and where it looked. Files are named by instrument and capture time (the frame's uid), so a
replayed frame rewrites its own files; each is written to a temporary name and renamed, so a
reader never sees half a file. Paths in records are relative to the evidence root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from seawatch.errors import StorageError
from seawatch.frames import FrameMeta

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
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    h, w = image.shape[:2]
    if max(h, w) > side:
        f = side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    return np.ascontiguousarray(image)


class EvidenceStore:
    """Writes evidence images under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, relative: str, image: np.ndarray, *, quality: int = 90) -> Path:
        """Encode ``image`` as JPEG at ``root/relative`` atomically; return the full path."""
        path = self.root / relative
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            msg = f"could not encode evidence image {relative} ({image.shape} {image.dtype})"
            raise StorageError(msg)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data.tobytes())
            os.replace(temporary, path)
        except OSError as exc:
            msg = f"cannot write evidence {path}: {exc}; check storage.local.evidence_dir"
            raise StorageError(msg) from exc
        return path


__all__ = ["THUMBNAIL_SIDE", "EvidenceStore", "evidence_paths", "thumbnail"]
