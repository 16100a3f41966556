"""Whole tank frames -> one head-left crop per fish: a cheap detector and orientation step.

numpy + OpenCV, a few milliseconds a 640 x 480 frame on one core (see the benchmark).
Why no learned model: a tank or trawl camera looks at a fixed wall whose light changes
slowly across the field, and a fish is a large, compact, contrasting blob on it. So:

1. **Background.** The frame is shrunk to 80 x 60 and a smooth surface (a cubic polynomial
   in x and y per colour channel) is fitted by least squares, twice, the second time without
   the pixels the first fit left far off (the fish): uneven light and vignetting are smooth,
   fish are not.
2. **Foreground.** Pixels whose colour differs from the surface by more than
   ``max(min_contrast, 3 x the spread)`` (the fit's residuals' median absolute
   deviation), on the frame at half size, opened and closed, then connected
   components; a component smaller than ``min_area`` is debris. Each component's box is a detection.
3. **Orientation** from the outline: a zebrafish is deep behind the head and thin at the
   caudal peduncle (80 % of its length from the snout) before the tail fin, so the mean
   column height of the outline over the first and last thirds of the box says which end is
   the head (the deeper one). A right-facing fish is mirrored, so the model sees the flank
   it was trained on (a mirrored crop is what a right-facing fish's *other* flank would look
   like head-left; see the fish README's *Limits*).
4. **Crop** as the training crops are framed: the fish spans about 91 % of the width of a
   2.5 : 1 window centred on its box (border pixels repeated where the window leaves the
   frame).

Limits (measured in ``benchmarks/fish_frames.py``): two fish that overlap become one
component (one box around both); a fish far smaller than ``min_area`` or with no contrast to
the wall is missed. The learned segmentation of issue 27 replaces steps 1-2 with
``tasks.fish.options.detector: model`` (:mod:`.frame_segment`); the crop and orientation
steps stay.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.models.fish.outline_gate import OutlineMeasures, measure_outline
from seawatch.models.fish.preprocess import to_uint8

_COARSE = (80, 60)  # background fit grid (w, h)
_ASPECT = 2.5  # the model's input width / height (160 x 64)
_SPAN = 0.91  # share of the crop's width the fish spans, as in training renders


@dataclass(frozen=True, slots=True)
class FishDetection:
    """One fish found in a frame: its box, which way it faces, and its head-left crop."""

    box: tuple[int, int, int, int]  # x, y, w, h of its outline in the frame
    facing_right: bool
    crop: np.ndarray  # head-left crop (mirrored when it faced right), the frame's dtype
    outline: OutlineMeasures | None = None  # its outline's shape (the merged-box gate)


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Thresholds of :func:`detect_fish` (pixels of the full frame; contrast in 0..255)."""

    min_area: int = 400
    min_contrast: float = 18.0
    min_width: int = 24


def detect_fish(
    image: np.ndarray, settings: DetectorSettings = DetectorSettings()
) -> list[FishDetection]:
    """Every fish in a whole frame (H x W gray, BGR or BGRA; uint8 or uint16), left to right.

    Found on the frame at half size when it is wider than 400 px (fish are large); boxes and
    crops are in the full frame. A frame without fish (or too small to hold one) gives [].
    """
    bgr = _as_bgr8(image)
    h, w = bgr.shape[:2]
    if h < 16 or w < 16:
        return []
    scale = 2 if w > 400 else 1
    if scale > 1:
        bgr = cv2.resize(bgr, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    mask = foreground(bgr, settings.min_contrast)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area * scale * scale < settings.min_area or bw * scale < settings.min_width:
            continue
        outline = labels[y : y + bh, x : x + bw] == k
        measures = measure_outline(outline, scale)
        box = (x * scale, y * scale, min(bw * scale, w - x * scale), min(bh * scale, h - y * scale))
        crop = head_left_crop(image, box, measures.head_right)
        found.append(FishDetection(box, measures.head_right, crop, measures))
    return sorted(found, key=lambda d: d.box[0])


def foreground(bgr: np.ndarray, min_contrast: float) -> np.ndarray:
    """uint8 0/255 mask of what differs from the frame's smooth background."""
    diff, level = difference(bgr, min_contrast)
    mask = (diff > level).astype(np.uint8) * 255
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))


def difference(bgr: np.ndarray, min_contrast: float) -> tuple[np.ndarray, float]:
    """Each pixel's largest colour difference from the frame's fitted smooth background
    (float32, 0..255) and the level over which it is foreground. Also the fish segmentation
    network's input (:mod:`seawatch.models.fish.frame_segment`)."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, _COARSE, interpolation=cv2.INTER_AREA).astype(np.float32)
    design = _design(*_COARSE)
    values = small.reshape(-1, 3)
    keep = np.ones(len(values), bool)
    spread = 1.0
    for _ in range(2):  # normal equations: a 10 x 10 solve (lstsq's BLAS threads cost more)
        d = design[keep]
        coef = np.linalg.solve(d.T @ d, d.T @ values[keep])
        residual = np.abs(values - design @ coef).max(axis=1)
        spread = float(np.median(residual[keep])) * 1.4826 + 1e-3
        keep = residual < max(min_contrast * 0.5, 3 * spread)
    background = (design @ coef).reshape(_COARSE[1], _COARSE[0], 3).astype(np.float32)
    background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    diff = cv2.absdiff(bgr.astype(np.float32), background).max(axis=2)
    return diff, max(min_contrast, 3 * spread)


def head_left_crop(
    image: np.ndarray, box: tuple[int, int, int, int], facing_right: bool
) -> np.ndarray:
    """The 2.5 : 1 window around ``box`` that frames the fish as training crops do,
    mirrored when the fish faces right."""
    x, y, bw, bh = box
    cw = max(bw / _SPAN, bh * _ASPECT * 1.05)
    ch = cw / _ASPECT
    x0, y0 = round(x + bw / 2 - cw / 2), round(y + bh / 2 - ch / 2)
    x1, y1 = x0 + max(1, round(cw)), y0 + max(1, round(ch))
    h, w = image.shape[:2]
    pad = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    crop = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(crop[:, ::-1]) if facing_right else crop


def _as_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded frame -> H x W x 3 uint8 BGR (for finding fish, not for the model)."""
    image = to_uint8(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    msg = f"image shape {image.shape} is not H x W, H x W x 3 or H x W x 4"
    raise ValueError(msg)


@functools.cache
def _design(w: int, h: int) -> np.ndarray:
    """Cubic polynomial terms in x, y (scaled to -1..1) for every pixel of a w x h grid."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = (xs.ravel() / (w - 1)) * 2 - 1, (ys.ravel() / (h - 1)) * 2 - 1
    terms = [np.ones_like(x), x, y, x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3]
    return np.stack(terms, axis=1)


__all__ = [
    "DetectorSettings",
    "FishDetection",
    "detect_fish",
    "difference",
    "foreground",
    "head_left_crop",
]
