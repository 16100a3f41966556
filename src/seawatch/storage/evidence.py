"""Evidence files for flagged samples: a thumbnail and a heat map beside the local store.

An alert or a dashboard row that says "this otolith is anomalous" links to what the model saw
and where it looked. The names come from :func:`seawatch.contracts.evidence.evidence_paths`;
each file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from seawatch.contracts.errors import StorageError


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


__all__ = ["EvidenceStore"]
