"""Parts of a ROI's measurement (:func:`seawatch.ingest.segment.measure_roi`) that need
nothing of the segmentation settings: the crop's background plane, its border and the
largest blob's outline. Each keeps the numbers of the plain version
(``tests/ingest/measure_roi_plain.py``) with fewer numpy passes: hot path, every ROI."""

from __future__ import annotations

import cv2
import numpy as np


def largest_contour(binary: np.ndarray) -> np.ndarray | None:
    """Outline of the largest external blob, or None when there is none.

    External contours of a binary image never overlap once filled, so the blob with the
    largest enclosed area is the contour with the largest polygon area; the first of the
    largest, as ``np.argmax`` picks it. Outlines of one or two points enclose nothing and are
    not measured (hot path: noisy ROIs have dozens of them).
    """
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    best, best_area = contours[0], 0.0
    for contour in contours:
        if len(contour) > 2:
            area = cv2.contourArea(contour)
            if area > best_area:
                best, best_area = contour, area
    return best


def upper_median(values: np.ndarray) -> float:
    """The upper median of a 1-D array, from one partition (np.median's overhead: hot path)."""
    k = values.size // 2
    return float(np.partition(values, k)[k])


def sides(image: np.ndarray) -> np.ndarray:
    """The one-pixel border of a 2-D array, in border_level's order (top, bottom, left, right)."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def border_plane(gray: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Background of a crop: a plane through the medians of its four sides.

    The medians make the plane robust to an object that touches one side. Returns the plane
    (float32, HxW), its mean level and the border's median grey level
    (:func:`~seawatch.contracts.preprocess.border_level`, computed here on the way).
    """
    h, w = gray.shape
    top, bottom, left, right = (
        np.float32(upper_median(side)) for side in (gray[0], gray[-1], gray[:, 0], gray[:, -1])
    )
    slope_x = (right - left) / max(w - 1, 1)
    slope_y = (bottom - top) / max(h - 1, 1)
    mean = (top + bottom + left + right) / 4.0
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) * slope_x
    ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2.0) * slope_y
    plane = np.add.outer(mean + ys, xs)
    pixels = sides(gray)
    k = pixels.size // 2
    if pixels.size % 2:
        level = float(np.partition(pixels, k)[k])
    else:
        middle = np.partition(pixels, (k - 1, k))
        level = (float(middle[k - 1]) + float(middle[k])) / 2.0
    return plane, float(mean), level


__all__ = ["border_plane", "largest_contour", "sides", "upper_median"]
