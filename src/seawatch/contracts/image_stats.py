"""Image-level statistics of prepared crops: what the instrument did, not what the object is.

A second instrument differs from the first in its optics and sensor: another noise level
and kind (shot noise, hot pixels), a streaky or vignetted background, another blur. The
classifier's features are trained to ignore exactly that, so a score on them misses a new
instrument's images of known taxa. These few statistics look at it directly; the
out-of-distribution score (:mod:`seawatch.contracts.ood`) measures how far an object's
statistics are from the training instrument's (kNN in standardised statistics).

All are computed on the prepared crop the classifier sees (``prepare_roi``: dark object on a
light background, ``S x S``), in one pass over a batch (the crops are padded by reflection
and stacked, so OpenCV filters the batch as one image). numpy + OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The statistics, in column order.
NAMES: tuple[str, ...] = (
    "background",  # median grey level of the crop's border ring
    "contrast",  # background minus the 1st percentile (how dark the object gets)
    "contrast_10",  # background minus the 10th percentile
    "flat_share",  # share of pixels at the background level (after a blur)
    "noise_flat",  # log mean |pixel - median3| over flat pixels: sensor noise
    "noise_all",  # log mean |pixel - median3| over the crop
    "highpass_flat",  # log RMS of pixel - blur over flat pixels
    "impulses",  # log share of flat pixels far from their 3x3 median: hot pixels
    "streaks",  # log mean step of the flat background's row and column profiles
    "edges",  # log 99th percentile of |Laplacian| of the blurred crop (every 2nd pixel)
    "sharpness",  # 99th percentile gradient over the contrast
    "border_spread",  # log standard deviation of the border ring
)
RING, PAD, FLAT_LEVELS, IMPULSE_LEVELS = 6, 8, 6.0, 20.0


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


def image_stats(images: np.ndarray) -> np.ndarray:
    """Statistics (:data:`NAMES`) of N prepared crops (uint8 N x S x S): float32 N x 12."""
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


__all__ = ["NAMES", "image_stats"]
