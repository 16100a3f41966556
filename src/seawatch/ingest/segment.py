"""Cutting frames into objects: flat-field correction, threshold, contours, morphometrics.

Full frames go through :func:`segment_full`:

1. **Background**: the frame is shrunk (area averaging) so that ``background_kernel``
   becomes ~9 px, median-filtered (objects smaller than half the kernel vanish from it)
   and enlarged back; vignetting and slow drift live in this estimate.
2. **Polarity**: from the deviations of the frame from its background, whichever side
   (darker or brighter) carries more mass beyond the noise; the background level breaks ties.
3. **Signal**: an 8-bit image where objects are bright and the background is ~0. Bright-field
   (dark-on-light) frames are divided by the background (illumination is multiplicative):
   ``255 * (1 - frame / background)``; dark-field frames have it subtracted (stray light is
   additive): ``frame - background``. A fixed ``threshold`` is given in these units.
4. **Threshold**: Otsu on the signal, never below a noise floor (4 sigma of the background
   noise, at least 8 levels), so an empty frame yields no objects instead of noise.
5. **Objects**: a small closing (an opening only on request: it would erase the one-pixel
   appendages plankton often have), external contours, objects under the minimum ESD
   dropped, crops cut from the original frame, measures from the filled outlines.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from seawatch.contracts.errors import FrameError
from seawatch.contracts.objects import Morphometrics, SegmentedObject
from seawatch.ingest.morphometrics import measure_contour, measure_mask
from seawatch.ingest.roi_parts import border_plane, largest_contour, sides, upper_median

Polarity = Literal["auto", "dark-on-light", "light-on-dark"]
_POLARITIES = ("auto", "dark-on-light", "light-on-dark")
_SMALL_KERNEL = 9  # background median kernel in the shrunken frame, px
_MIN_SMALL_SIDE = 16  # the shrunken frame keeps at least this many pixels a side
_STAT_SAMPLES = 30_000  # pixels sampled for the noise and polarity statistics (sigma to ~0.4 %)
_OTSU_SAMPLES = 1_000_000
_NOISE_SIGMAS = 4.0
_MIN_SIGNAL = 8.0
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class SegmentParams:
    """Segmentation settings; ``threshold`` is ``"otsu"`` or a fixed signal level (0..255)."""

    polarity: Polarity = "auto"
    min_esd_px: float = 6.0
    min_esd_um: float | None = None
    threshold: Literal["otsu"] | float = "otsu"
    background_kernel: int = 101
    pad_px: int = 4
    max_objects: int = 5000
    close_px: int = 3
    open_px: int = 0

    def __post_init__(self) -> None:
        if self.polarity not in _POLARITIES:
            msg = f"polarity must be one of {', '.join(_POLARITIES)}, got {self.polarity!r}"
            raise ValueError(msg)
        if self.threshold != "otsu" and not (
            isinstance(self.threshold, int | float) and 0 < self.threshold < 255
        ):
            msg = f"threshold must be 'otsu' or a number in (0, 255), got {self.threshold!r}"
            raise ValueError(msg)
        if self.background_kernel < 3 or self.background_kernel % 2 == 0:
            msg = f"background_kernel must be an odd size >= 3 px, got {self.background_kernel}"
            raise ValueError(msg)
        if self.min_esd_px < 0 or (self.min_esd_um is not None and self.min_esd_um < 0):
            msg = f"minimum ESD must be >= 0, got {self.min_esd_px} px / {self.min_esd_um} um"
            raise ValueError(msg)
        for name in ("pad_px", "close_px", "open_px"):
            if getattr(self, name) < 0:
                msg = f"{name} must be >= 0, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.max_objects < 1:
            msg = f"max_objects must be >= 1, got {self.max_objects}"
            raise ValueError(msg)

    def min_area_px(self, pixel_size_um: float | None) -> float:
        """Area of the smallest object kept, from the ESD in um when the pixel size is known."""
        esd = self.min_esd_px
        if self.min_esd_um is not None and pixel_size_um:
            esd = self.min_esd_um / pixel_size_um
        return math.pi / 4.0 * esd * esd


def _check_gray8(gray8: np.ndarray) -> None:
    if gray8.ndim != 2 or gray8.dtype != np.uint8:
        msg = (
            f"segmentation needs a 2-D uint8 image, got shape {gray8.shape} dtype "
            f"{gray8.dtype}; convert it with seawatch.contracts.preprocess.to_gray8"
        )
        raise ValueError(msg)


def _point_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """Pad a uint8 image by point reflection (``2 * edge - mirror``): gradients continue."""
    mirror = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    edge = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.clip(2.0 * edge.astype(np.float32) - mirror, 0, 255).astype(np.uint8)


def _background(gray: np.ndarray, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-size background estimate (uint8) and its shrunken version.

    Both the median and the enlargement see point-reflected borders, not replicated ones:
    with replicated borders a vignetted corner's background would be biased towards the
    brighter inside, and the corner would turn into signal.
    """
    h, w = gray.shape
    factor = max(1, min(kernel // _SMALL_KERNEL, min(h, w) // _MIN_SMALL_SIDE))
    sw, sh = w // factor, h // factor
    # An integer factor takes OpenCV's fast block-averaging path; the few rows and columns
    # cut off at the far edges are covered by the padded enlargement below.
    small = gray
    if factor > 1:
        small = cv2.resize(
            gray[: sh * factor, : sw * factor], (sw, sh), interpolation=cv2.INTER_AREA
        )
    side = min(sh, sw)
    ksize = max(3, min(round(kernel / factor), side - (side + 1) % 2) | 1)
    pad = ksize // 2
    small_bg = cv2.medianBlur(_point_pad(small, pad), ksize)[pad:-pad, pad:-pad]
    if factor == 1:
        return small_bg, small_bg
    size = ((sw + 2) * factor, (sh + 2) * factor)
    big = cv2.resize(_point_pad(small_bg, 1), size, interpolation=cv2.INTER_LINEAR)
    return big[factor : factor + h, factor : factor + w], small_bg


def _noise_sigma(deviations: np.ndarray) -> float:
    """Noise of the background deviations, objects excluded.

    The standard deviation of the values within 3 robust sigmas (median absolute deviation,
    at least one grey level: on integer data the MAD alone is too coarse).
    """
    if deviations.size == 0:
        return 0.0
    centred = np.abs(deviations - np.median(deviations))
    limit = 3.0 * max(_MAD_TO_SIGMA * float(np.median(centred)), 1.0)
    return float(deviations[centred <= limit].std())


def _relu(values: np.ndarray) -> np.ndarray:
    """``max(values, 0)`` in place (float32); the same values as ``np.maximum``, faster."""
    cv2.threshold(values, 0.0, 0.0, cv2.THRESH_TOZERO, dst=values)
    return values


def _decide_polarity(deviations: np.ndarray, sigma: float, level: float) -> str:
    """Objects lie on the side (darker / brighter) with more mass beyond the noise."""
    margin = 3.0 * sigma + 2.0
    # In place in one scratch array (hot path: every ROI): the values of
    # clip(-d - margin, 0) and clip(d - margin, 0), without four temporaries; OpenCV's
    # to-zero threshold is max(x, 0) at a third of np.maximum's cost on float32.
    beyond = np.negative(deviations)
    beyond -= margin
    darker = float(_relu(beyond).sum())
    np.subtract(deviations, margin, out=beyond)
    brighter = float(_relu(beyond).sum())
    if darker == brighter:
        return "dark-on-light" if level >= 128 else "light-on-dark"
    return "dark-on-light" if darker > brighter else "light-on-dark"


def _threshold(signal: np.ndarray, params: SegmentParams, floor: float) -> np.ndarray:
    """Binary (0/255) mask of the signal above the threshold."""
    level = float(params.threshold) if params.threshold != "otsu" else floor
    if params.threshold == "otsu":
        # Otsu's level from a subsample of ~1 Mpx: the same histogram at a fraction of the cost.
        step = max(1, math.isqrt(signal.size // _OTSU_SAMPLES))
        sample = np.ascontiguousarray(signal[::step, ::step])
        otsu, binary = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        if step == 1 and otsu >= floor:
            return binary  # the whole signal cut at Otsu's level already (small ROIs)
        level = max(float(otsu), floor)
    return cv2.threshold(signal, level, 255, cv2.THRESH_BINARY)[1]


@functools.cache
def _disc(size: int) -> np.ndarray:
    """The elliptical structuring element of ``size`` (made once per size)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _clean(binary: np.ndarray, params: SegmentParams) -> np.ndarray:
    for size, op in ((params.open_px, cv2.MORPH_OPEN), (params.close_px, cv2.MORPH_CLOSE)):
        if size > 1:
            binary = cv2.morphologyEx(binary, op, _disc(size))
    return binary


def _frame_signal(gray: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, float]:
    """Flat-field corrected signal (objects bright, background ~0) and its noise floor."""
    background, small_bg = _background(gray, params.background_kernel)
    level = float(np.median(small_bg))
    step = max(1, math.isqrt(gray.size // _STAT_SAMPLES))
    deviations = gray[::step, ::step].astype(np.float32) - background[::step, ::step]
    sigma = _noise_sigma(deviations)
    polarity = params.polarity
    if polarity == "auto":
        polarity = _decide_polarity(deviations, sigma, level)
    if polarity == "light-on-dark":
        return cv2.subtract(gray, background), max(_NOISE_SIGMAS * sigma, _MIN_SIGNAL)
    signal = cv2.bitwise_not(cv2.divide(gray, background, scale=255.0))
    unlit = max(4.0, 0.1 * level)  # where the background is black there is nothing to see
    if float(small_bg.min()) < unlit:
        signal[background < unlit] = 0
    sigma_signal = sigma * 255.0 / max(level, 1.0)
    return signal, max(_NOISE_SIGMAS * sigma_signal, _MIN_SIGNAL)


def _crop(
    gray: np.ndarray, rect: tuple[int, int, int, int], pad: int
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    h, w = gray.shape
    x, y, bw, bh = rect
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
    return (x0, y0, x1 - x0, y1 - y0), gray[y0:y1, x0:x1].copy()


def frame_signal(gray8: np.ndarray, params: SegmentParams) -> np.ndarray:
    """The flat-field corrected signal of a full frame (uint8: objects bright, background ~0),
    what the threshold cuts and what the segmentation model looks at."""
    _check_gray8(gray8)
    return _frame_signal(gray8, params)[0]


def _kept_contours(
    gray8: np.ndarray, params: SegmentParams, pixel_size_um: float | None
) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, Morphometrics]]]:
    """The thresholded frame's outlines, their boxes and the (index, measures) of the ones
    kept, in reading order."""
    _check_gray8(gray8)
    if gray8.size == 0:
        return [], np.empty((0, 4), np.int64), []
    signal, floor = _frame_signal(gray8, params)
    if params.threshold == "otsu" and cv2.minMaxLoc(signal)[1] <= floor:
        return [], np.empty((0, 4), np.int64), []
    binary = _clean(_threshold(signal, params, floor), params)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return [], np.empty((0, 4), np.int64), []
    min_area = params.min_area_px(pixel_size_um)
    rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64).reshape(-1, 4)
    candidates = np.flatnonzero(rects[:, 2] * rects[:, 3] >= max(min_area, 1.0))
    # Reading order of the tight boxes: by top edge, then left edge.
    candidates = candidates[np.lexsort((rects[candidates, 0], rects[candidates, 1]))]
    kept: list[tuple[int, Morphometrics]] = []
    for i in candidates:
        morph = measure_contour(contours[i], pixel_size_um)
        if morph.area_px >= min_area and morph.area_px > 0:
            kept.append((int(i), morph))
            if len(kept) > params.max_objects:
                msg = (
                    f"more than max_objects={params.max_objects} objects in the frame; it is "
                    "likely noise or a wrong threshold/polarity; fix those or raise max_objects"
                )
                raise FrameError(stage="segment", reason=msg, field="objects")
    return list(contours), rects, kept


def segment_full(
    gray8: np.ndarray, params: SegmentParams, pixel_size_um: float | None
) -> list[SegmentedObject]:
    """Cut a full 8-bit frame into objects, in reading order (top-to-bottom, left-to-right).

    Each object's ``bbox`` is the region of its crop in the frame: the object's bounding box
    grown by ``pad_px`` and clipped to the frame, so ``image == frame[y:y+h, x:x+w]``.
    Raises FrameError(stage="segment") when more than ``max_objects`` objects are found.
    """
    _, rects, kept = _kept_contours(gray8, params, pixel_size_um)
    objects = []
    for index, (i, morph) in enumerate(kept):
        x, y, w, h = (int(v) for v in rects[i])
        bbox, image = _crop(gray8, (x, y, w, h), params.pad_px)
        objects.append(SegmentedObject(index=index, bbox=bbox, image=image, morph=morph))
    return objects


def threshold_labels(
    gray8: np.ndarray, params: SegmentParams, pixel_size_um: float | None
) -> np.ndarray:
    """The objects :func:`segment_full` keeps as a label map (int32; object ``i`` is
    ``i + 1``, its filled outline): to score the threshold against true masks."""
    contours, _, kept = _kept_contours(gray8, params, pixel_size_um)
    labels = np.zeros(gray8.shape, np.int32)
    for index, (i, _) in enumerate(kept):
        cv2.drawContours(labels, contours, i, index + 1, thickness=cv2.FILLED)
    return labels


def _roi_signal(gray8: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, float]:
    """The ROI's signal (uint8: the object bright, the background ~0) and its noise floor."""
    plane, level, border = border_plane(gray8)
    deviations = np.subtract(gray8, plane, dtype=np.float32)
    # the noise: the robust sigma (MAD) of the border around the plane
    border_deviations = sides(deviations)
    sigma = _MAD_TO_SIGMA * upper_median(np.abs(border_deviations, out=border_deviations))
    polarity = params.polarity
    if polarity == "auto":
        polarity = _decide_polarity(deviations, sigma, border)
    if polarity == "light-on-dark":
        raw, sigma_signal = deviations, sigma
    else:
        # -255 / max(plane, 1) * deviations, in the plane's buffer (no temporaries)
        scale = np.maximum(plane, 1.0, out=plane)
        np.divide(-255.0, scale, out=scale)
        raw = np.multiply(deviations, scale, out=deviations)
        sigma_signal = sigma * 255.0 / max(level, 1.0)
    # clip(raw, 0, 255) in place, by two OpenCV thresholds (np.clip's NaN checks: hot path)
    cv2.threshold(_relu(raw), 255.0, 255.0, cv2.THRESH_TRUNC, dst=raw)
    signal = raw.astype(np.uint8)
    return signal, max(_NOISE_SIGMAS * sigma_signal, _MIN_SIGNAL)


def measure_roi(
    gray8: np.ndarray, params: SegmentParams, pixel_size_um: float | None
) -> SegmentedObject:
    """Measure a ROI frame (one object, already cut by the instrument).

    The object is the whole crop (bbox = the image); the measures come from the largest
    blob of the thresholded crop, or from the whole crop when no blob stands out. The
    crop's background is a plane through the medians of its four sides (the border level,
    tilted by any illumination gradient).
    """
    _check_gray8(gray8)
    h, w = gray8.shape
    if h == 0 or w == 0:
        msg = f"the ROI image is empty ({w}x{h}); the instrument sent no pixels"
        raise FrameError(stage="segment", reason=msg, field="value")
    signal, floor = _roi_signal(gray8, params)
    outline = None
    if params.threshold != "otsu" or int(signal.max()) > floor:
        outline = largest_contour(_clean(_threshold(signal, params, floor), params))
    if outline is None:
        morph = measure_mask(np.ones((h, w), dtype=np.uint8), pixel_size_um)
    else:
        morph = measure_contour(outline, pixel_size_um)
    return SegmentedObject(index=0, bbox=(0, 0, w, h), image=gray8, morph=morph)


__all__ = [
    "Polarity",
    "SegmentParams",
    "frame_signal",
    "measure_roi",
    "segment_full",
    "threshold_labels",
]
