"""Image files a user hands the project (training folders, calibration sets, normal
specimens): which suffixes count as images, and how one is read (as OpenCV decodes it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})


def read_image(path: Path) -> np.ndarray:
    """Read an image file as OpenCV decodes it (gray or BGR, 8 or 16 bit)."""
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        msg = f"{path}: not a readable image (JPEG, PNG, TIFF or BMP)"
        raise ValueError(msg)
    return image


__all__ = ["IMAGE_SUFFIXES", "read_image"]
