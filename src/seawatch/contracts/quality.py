"""Image quality of a full frame: how sharp it is and how much of it is saturated.

Cheap enough for every frame (a 2x downsample, one Laplacian): the ``frame_quality`` alert
rule uses them to tell blurred and over-exposed frames from good ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SATURATED_LEVEL = 250


@dataclass(frozen=True, slots=True)
class FrameQuality:
    """``sharpness``: variance of the Laplacian of the half-resolution 8-bit frame (low is
    blurred); ``saturated_share``: share of pixels at :data:`SATURATED_LEVEL` or above;
    ``segmentation``: the mean predicted IoU of the objects the segmentation model cut
    (None when the threshold cut the frame, or the model found nothing)."""

    sharpness: float
    saturated_share: float
    segmentation: float | None = None


def measure_quality(gray: np.ndarray) -> FrameQuality:
    """Quality of an 8-bit grayscale frame."""
    if gray.dtype != np.uint8 or gray.ndim != 2:
        msg = f"expected an 8-bit gray image, got {gray.dtype} {gray.shape}"
        raise ValueError(msg)
    # A frame under 2 px on a side has no half-resolution version: measure it as it is.
    small = (
        gray
        if min(gray.shape) < 2
        else cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    )
    laplacian = cv2.Laplacian(small, cv2.CV_32F)
    saturated = float(np.count_nonzero(gray >= SATURATED_LEVEL)) / gray.size
    return FrameQuality(round(float(laplacian.var()), 3), round(saturated, 6))


__all__ = ["SATURATED_LEVEL", "FrameQuality", "measure_quality"]
