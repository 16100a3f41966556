"""Images kept for people to look at: each object's crop (and each fish view) as PNG, or
an instrument's ROI as it sent it (PNG or JPEG), named by the SHA-256 of its bytes, with a
grid-sized JPEG thumbnail.

A head encodes them in ``prepare`` (on the decode threads); the records name them by digest
and :class:`seawatch.storage.crop_store.CropStore` keeps them, durable before the offsets are
committed. The same crop stored twice (a replay) is one entry.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

import cv2
import numpy as np

from seawatch.contracts.evidence import thumbnail

DIGEST = re.compile(r"^[0-9a-f]{64}$")  # what a crop's name may be (no path, nothing else)
MAX_CROP_SIDE = 256  # longer crops are shrunk to this before they are kept
THUMB_SIDE = 128  # the grid shows 96 CSS px: sharp on a 1.33x screen, ~1/7 of a crop's bytes
THUMB_QUALITY = 85  # JPEG quality of thumbnails (lossless PNG stays the crop of record)
# an 8-bit JPEG sent at most this much larger than a thumbnail is its own thumbnail: a fish
# side view (160 x 64) would shrink to 128 x 51 and weigh about as much, and making that
# thumbnail was a tenth of a fish frame's loop time (issue 26's profile)
THUMB_SLACK = 1.25


class Crop(NamedTuple):
    """A kept image: its PNG (the crop of record), the PNG's SHA-256 (its name) and a JPEG
    thumbnail for grids (empty when the crop serves as its own: no larger than a thumbnail,
    or a JPEG kept as sent and not much larger, see :data:`THUMB_SLACK`)."""

    digest: str
    png: bytes
    thumb: bytes = b""


def _shrunk(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_crop(image: np.ndarray, *, max_side: int = MAX_CROP_SIDE) -> Crop:
    """An 8-bit gray or BGR image -> its PNG (shrunk to ``max_side``), the PNG's digest and
    a JPEG thumbnail of at most :data:`THUMB_SIDE` (a 96-px grid of 200 crops reads ~300 KB
    instead of ~2.2 MB: measured on the synthetic renderer's crops, 1.6 KB against 11.4 KB)."""
    if image.dtype != np.uint8:
        raise ValueError(f"crops are kept as 8-bit images, got {image.dtype}")
    image = _shrunk(image, max_side)
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError(f"could not encode a {image.shape} crop as PNG")
    png = data.tobytes()
    return Crop(hashlib.sha256(png).hexdigest(), png, _thumb(image))


def _thumb(image: np.ndarray) -> bytes:
    """The JPEG thumbnail of an image larger than :data:`THUMB_SIDE`; empty otherwise."""
    if max(image.shape[:2]) <= THUMB_SIDE:
        return b""
    return _jpeg(_shrunk(image, THUMB_SIDE))


def _jpeg(image: np.ndarray) -> bytes:
    """A thumbnail's JPEG bytes (empty if OpenCV cannot encode it)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    return data.tobytes() if ok else b""


KEPT_AS_SENT = ("image/png", "image/jpeg")  # an ROI in these types is kept as it came


def crop_as_sent(data: bytes, image: np.ndarray) -> Crop:
    """A whole image the instrument sent as PNG or JPEG (``image``: its decoded pixels, any
    depth, at most :data:`MAX_CROP_SIDE`), kept as it came: the instrument's own vignette
    (colour and bit depth included), named by its bytes, with no re-encoding (a PNG encode
    was 15 % of an ROI frame's CPU and 39 % of a fish frame's; profiled on issue 26); the
    thumbnail is made from ``image``."""
    if max(image.shape[:2]) > MAX_CROP_SIDE:
        raise ValueError(f"an image larger than {MAX_CROP_SIDE} px is shrunk: use encode_crop")
    # 8-bit BGR, whatever depth came
    thumb = b"" if _own_thumbnail(data, image) else _jpeg(thumbnail(image, THUMB_SIDE))
    return Crop(hashlib.sha256(data).hexdigest(), bytes(data), thumb)


def _own_thumbnail(data: bytes, image: np.ndarray) -> bool:
    """Whether an image kept as sent serves as its own thumbnail: no larger than one, or an
    8-bit JPEG at most :data:`THUMB_SLACK` times larger (the grid shrinks it as it shows it)."""
    side = max(image.shape[:2])
    if side <= THUMB_SIDE:
        return True
    return side <= THUMB_SIDE * THUMB_SLACK and image.dtype == np.uint8 and _is_jpeg(data)


def _is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def can_keep_as_sent(content_type: str, image: np.ndarray) -> bool:
    """Whether a whole frame can be its own crop: PNG or JPEG, and no larger than a crop."""
    return content_type in KEPT_AS_SENT and max(image.shape[:2]) <= MAX_CROP_SIDE


def image_type(data: bytes) -> str:
    """The media type of a kept image's bytes (a PNG crop or a JPEG thumbnail)."""
    return "image/jpeg" if _is_jpeg(data) else "image/png"


def is_digest(name: str) -> bool:
    """True when ``name`` is a crop's name (64 lower-case hex digits), nothing else."""
    return bool(DIGEST.match(name))


__all__ = [
    "DIGEST",
    "KEPT_AS_SENT",
    "MAX_CROP_SIDE",
    "THUMB_SIDE",
    "THUMB_SLACK",
    "Crop",
    "can_keep_as_sent",
    "crop_as_sent",
    "encode_crop",
    "image_type",
    "is_digest",
]
