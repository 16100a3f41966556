"""The plain version of :func:`seawatch.ingest.segment.measure_roi`, as it stood before issue 26's
loop-thread cut (np.maximum / np.clip passes, the border gathered twice, the polygon area of
every outline, OpenCV's binarising moments, the hull pairs in float64): the reference the
fast version must agree with (``test_measure_roi_fast.py``, ``benchmarks/measure_roi.py``)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from seawatch.contracts.objects import Morphometrics, SegmentedObject
from seawatch.contracts.preprocess import border_level
from seawatch.ingest.segment import SegmentParams

_MAD_TO_SIGMA = 1.4826
_NOISE_SIGMAS = 4.0
_MIN_SIGNAL = 8.0
_OTSU_SAMPLES = 1_000_000


def _axes(moments: dict[str, float]) -> tuple[float, float]:
    m00 = moments["m00"]
    if m00 <= 0:
        return 0.0, 0.0
    a, b, c = moments["mu20"] / m00, moments["mu11"] / m00, moments["mu02"] / m00
    mean, spread = (a + c) / 2.0, math.hypot((a - c) / 2.0, b)
    return 4.0 * math.sqrt(max(mean + spread, 0.0)), 4.0 * math.sqrt(max(mean - spread, 0.0))


def _feret(points: np.ndarray) -> float:
    pts = np.asarray(points, dtype=np.int32).reshape(-1, 2)
    if len(pts) == 0:
        return 0.0
    hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)
    dx = np.abs(hull[:, None, 0] - hull[None, :, 0]) + 1.0
    dy = np.abs(hull[:, None, 1] - hull[None, :, 1]) + 1.0
    return math.sqrt(float((dx * dx + dy * dy).max()))


def _measure_mask(
    mask: np.ndarray, pixel: float | None, outline: np.ndarray | None
) -> Morphometrics:
    moments = cv2.moments(mask, binaryImage=True)
    major, minor = _axes(moments)
    if outline is None:
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        outline = np.concatenate(contours) if contours else np.empty((0, 2), np.int32)
    return Morphometrics(float(moments["m00"]), major, minor, _feret(outline), pixel)


def _measure_contour(contour: np.ndarray, pixel: float | None) -> Morphometrics:
    pts = np.asarray(contour, dtype=np.int32).reshape(-1, 1, 2)
    x, y, w, h = cv2.boundingRect(pts)
    local = pts - np.array([x, y], dtype=np.int32)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.drawContours(mask, [local], -1, 1, thickness=cv2.FILLED)
    return _measure_mask(mask, pixel, local)


def _border_plane(gray: np.ndarray) -> tuple[np.ndarray, float, float]:
    h, w = gray.shape
    sides = [gray[0], gray[-1], gray[:, 0], gray[:, -1]]
    top, bottom, left, right = (float(np.partition(s, s.size // 2)[s.size // 2]) for s in sides)
    top, bottom, left, right = (np.float32(v) for v in (top, bottom, left, right))
    slope_x = (right - left) / max(w - 1, 1)
    slope_y = (bottom - top) / max(h - 1, 1)
    mean = (top + bottom + left + right) / 4.0
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) * slope_x
    ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2.0) * slope_y
    plane = (mean + ys)[:, None] + xs[None, :]
    border = np.concatenate(
        [
            gray[0] - plane[0],
            gray[-1] - plane[-1],
            gray[1:-1, 0] - plane[1:-1, 0],
            gray[1:-1, -1] - plane[1:-1, -1],
        ]
    )
    k = border.size // 2
    sigma = _MAD_TO_SIGMA * float(np.float32(np.partition(np.abs(border), k)[k]))
    return plane.astype(np.float32, copy=False), float(mean), sigma


def _polarity(deviations: np.ndarray, sigma: float, level: float) -> str:
    margin = 3.0 * sigma + 2.0
    darker = float(np.clip(-deviations - margin, 0, None).sum())
    brighter = float(np.clip(deviations - margin, 0, None).sum())
    if darker == brighter:
        return "dark-on-light" if level >= 128 else "light-on-dark"
    return "dark-on-light" if darker > brighter else "light-on-dark"


def _mask(signal: np.ndarray, params: SegmentParams, floor: float) -> np.ndarray:
    level = float(params.threshold) if params.threshold != "otsu" else floor
    if params.threshold == "otsu":
        step = max(1, math.isqrt(signal.size // _OTSU_SAMPLES))
        sample = np.ascontiguousarray(signal[::step, ::step])
        otsu = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[0]
        level = max(float(otsu), floor)
    binary = cv2.threshold(signal, level, 255, cv2.THRESH_BINARY)[1]
    for size, op in ((params.open_px, cv2.MORPH_OPEN), (params.close_px, cv2.MORPH_CLOSE)):
        if size > 1:
            disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            binary = cv2.morphologyEx(binary, op, disc)
    return binary


def _largest(binary: np.ndarray) -> np.ndarray | None:
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    return contours[int(np.argmax([cv2.contourArea(c) for c in contours]))]


def plain_roi_signal(gray8: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, float]:
    """The ROI's signal (uint8, the object bright) and its noise floor, the plain way."""
    plane, level, sigma = _border_plane(gray8)
    deviations = gray8.astype(np.float32) - plane
    polarity = params.polarity
    if polarity == "auto":
        polarity = _polarity(deviations, sigma, border_level(gray8))
    if polarity == "light-on-dark":
        raw, sigma_signal = deviations, sigma
    else:
        scale = -255.0 / np.maximum(plane, 1.0)
        raw, sigma_signal = deviations * scale, sigma * 255.0 / max(level, 1.0)
    signal = np.clip(raw, 0, 255).astype(np.uint8)
    return signal, max(_NOISE_SIGMAS * sigma_signal, _MIN_SIGNAL)


def plain_measure_roi(
    gray8: np.ndarray, params: SegmentParams, pixel_size_um: float | None
) -> SegmentedObject:
    """The ROI's object and measures, the plain way (no error checks: valid input only)."""
    h, w = gray8.shape
    signal, floor = plain_roi_signal(gray8, params)
    outline = None
    if params.threshold != "otsu" or int(signal.max()) > floor:
        outline = _largest(_mask(signal, params, floor))
    if outline is None:
        morph = _measure_mask(np.ones((h, w), dtype=np.uint8), pixel_size_um, None)
    else:
        morph = _measure_contour(outline, pixel_size_um)
    return SegmentedObject(index=0, bbox=(0, 0, w, h), image=gray8, morph=morph)
