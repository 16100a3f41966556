"""The plain version of :func:`seawatch.contracts.image_stats.image_stats`, as issue 24 wrote it
(``np.median`` / ``np.percentile`` sorts, the gradient everywhere): the reference the fast
version must agree with (``test_image_stats.py``)."""

from __future__ import annotations

import cv2
import numpy as np

from seawatch.contracts.image_stats import FLAT_LEVELS, IMPULSE_LEVELS, NAMES, PAD, RING


def _ring(side: int) -> np.ndarray:
    ring = np.zeros((side, side), bool)
    ring[:RING], ring[-RING:], ring[:, :RING], ring[:, -RING:] = True, True, True, True
    return ring


def _filtered(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 median of every crop and its Gaussian blur (sigma 2), one OpenCV call each."""
    n, side, _ = images.shape
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)), mode="reflect")
    tall = padded.reshape(n * (side + 2 * PAD), side + 2 * PAD)
    median = cv2.medianBlur(tall, 3)
    # the blur of the median: an impulse must not knock its own neighbourhood out of "flat"
    blur = cv2.GaussianBlur(median.astype(np.float32), (0, 0), 2.0).reshape(padded.shape)
    median = median.reshape(padded.shape)
    inner = (slice(None), slice(PAD, PAD + side), slice(PAD, PAD + side))
    return median[inner].astype(np.float32), blur[inner]


def plain_image_stats(images: np.ndarray) -> np.ndarray:
    """The statistics of N prepared crops (uint8 N x S x S): float32 N x 12."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1] != images.shape[2]:
        msg = f"image_stats needs uint8 N x S x S crops, got {images.shape} {images.dtype}"
        raise ValueError(msg)
    n, side, _ = images.shape
    if n == 0:
        return np.zeros((0, len(NAMES)), np.float32)
    x = images.astype(np.float32)
    median, blur = _filtered(images)
    ring = _ring(side)
    background = np.median(x[:, ring], axis=1)
    flat = np.abs(blur - background[:, None, None]) < FLAT_LEVELS
    n_flat = np.maximum(flat.sum((1, 2)), 1)
    residual = np.abs(x - median)
    highpass = (x - blur) ** 2
    rows = (blur * flat).sum(2) / np.maximum(flat.sum(2), 1)
    cols = (blur * flat).sum(1) / np.maximum(flat.sum(1), 1)
    streaks = np.abs(np.diff(rows, axis=1)).mean(1) + np.abs(np.diff(cols, axis=1)).mean(1)
    # percentiles on every second pixel in each direction: a quarter of the partition work
    b = blur[:, ::2, ::2]
    lap = np.abs(b[:, :-2, 1:-1] + b[:, 2:, 1:-1] + b[:, 1:-1, :-2] + b[:, 1:-1, 2:]
                 - 4 * b[:, 1:-1, 1:-1]).reshape(n, -1)  # fmt: skip
    grad = np.hypot(np.diff(x, axis=2)[:, :-1], np.diff(x, axis=1)[:, :, :-1])[:, ::2, ::2]
    q = np.percentile(x[:, ::2, ::2].reshape(n, -1), [1, 10], axis=1)
    contrast = background - q[0]
    columns = (
        background,
        contrast,
        background - q[1],
        flat.mean((1, 2)),
        np.log((residual * flat).sum((1, 2)) / n_flat + 0.05),
        np.log(residual.mean((1, 2)) + 0.05),
        np.log(np.sqrt((highpass * flat).sum((1, 2)) / n_flat) + 0.05),
        np.log(((residual > IMPULSE_LEVELS) & flat).sum((1, 2)) / n_flat + 1e-3),
        np.log(streaks + 1e-2),
        np.log(np.percentile(lap, 99, axis=1) + 1e-2),
        np.percentile(grad.reshape(n, -1), 99, axis=1) / (contrast + 5.0),
        np.log(x[:, ring].std(1) + 0.1),
    )
    return np.stack(columns, 1).astype(np.float32)
