"""Images kept for people to look at: each object's crop (and each fish view) as PNG,
named by the SHA-256 of its bytes.

A head encodes them in ``prepare`` (on the decode threads); the records name them by digest
and :class:`seawatch.storage.crop_store.CropStore` keeps them, durable before the offsets are
committed. The same crop stored twice (a replay) is one entry.
"""

from __future__ import annotations

import hashlib
import re

import cv2
import numpy as np

Crop = tuple[str, bytes]  # (sha256 hex digest, PNG bytes)
DIGEST = re.compile(r"^[0-9a-f]{64}$")  # what a crop's name may be (no path, nothing else)
MAX_CROP_SIDE = 256  # longer crops are shrunk to this before they are kept


def encode_crop(image: np.ndarray, *, max_side: int = MAX_CROP_SIDE) -> Crop:
    """An 8-bit gray or BGR image -> its PNG bytes and their digest (shrunk to ``max_side``)."""
    if image.dtype != np.uint8:
        raise ValueError(f"crops are kept as 8-bit images, got {image.dtype}")
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError(f"could not encode a {image.shape} crop as PNG")
    png = data.tobytes()
    return hashlib.sha256(png).hexdigest(), png


def is_digest(name: str) -> bool:
    """True when ``name`` is a crop's name (64 lower-case hex digits), nothing else."""
    return bool(DIGEST.match(name))


__all__ = ["DIGEST", "MAX_CROP_SIDE", "Crop", "encode_crop", "is_digest"]
