"""Image-level statistics of prepared crops: what the instrument did, not what the object is.

A second instrument differs from the first in its optics and sensor: another noise level
and kind (shot noise, hot pixels), a streaky or vignetted background, another blur. The
classifier's features are trained to ignore exactly that, so a score on them misses a new
instrument's images of known taxa. These few statistics look at it directly; the
out-of-distribution score (:mod:`seawatch.contracts.ood`) measures how far an object's
statistics are from the training instrument's (kNN in standardised statistics).

All are computed on the prepared crop the classifier sees (``prepare_roi``: dark object on a
light background, ``S x S``), in one pass over a batch (the crops are padded by reflection
and stacked, so OpenCV filters the batch as one image). numpy + OpenCV only. It runs on the
inference thread for every object, so it is written for cost (issue 26): order statistics
of grey levels from per-crop histograms instead of sorts, the gradient only where it is
read, each product over the batch once. ``tests/contracts/image_stats_plain.py`` holds the
plain version (issue 24's) and ``test_image_stats_fast.py`` checks both agree.
"""

from __future__ import annotations

import functools

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


@functools.cache
def _ring(side: int) -> np.ndarray:
    """Flat indices of the border ring of a ``side x side`` crop (row-major, as a mask)."""
    ring = np.zeros((side, side), bool)
    ring[:RING], ring[-RING:], ring[:, :RING], ring[:, -RING:] = True, True, True, True
    return np.flatnonzero(ring)


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
    return median[inner], blur[inner]


def _lerp(low: np.ndarray, high: np.ndarray, t: float) -> np.ndarray:
    """numpy's linear interpolation of ``np.percentile`` (the same rounding)."""
    step = high - low
    return high - step * (1 - t) if t >= 0.5 else low + step * t


def _positions(count: int, q: float) -> tuple[int, int, float]:
    """The two order statistics (0-based) and the weight of ``np.percentile(q)`` of
    ``count`` values."""
    at = q / 100.0 * (count - 1)
    low = int(np.floor(at))
    return low, min(low + 1, count - 1), at - low


def _grey_percentiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(values, qs, axis=1)`` of uint8 rows (N x M) from per-row histograms:
    (len(qs), N) float32, the same numbers without a sort."""
    n, m = values.shape
    keys = values + (np.arange(n, dtype=np.int32) * 256)[:, None]
    cumulative = np.bincount(keys.ravel(), minlength=n * 256).reshape(n, 256).cumsum(1)
    spots = [_positions(m, q) for q in qs]
    ranks = np.array([r for low, high, _ in spots for r in (low, high)])
    # the k-th smallest value (0-based) is the number of grey levels with at most k below
    order = (cumulative[:, None, :] <= ranks[None, :, None]).sum(2).astype(np.float32)
    return np.stack(
        [_lerp(order[:, 2 * i], order[:, 2 * i + 1], t) for i, (_, _, t) in enumerate(spots)]
    )


def _top_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(values, q, axis=1)`` of float rows by one partition (N,): the next
    order statistic is the least of the few values above the partition point."""
    low, high, t = _positions(values.shape[1], q)
    part = np.partition(values, low, axis=1)
    above = part[:, low + 1 :].min(1) if high > low else part[:, low]
    return _lerp(part[:, low], above, t)


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
    ring = images.reshape(n, -1)[:, _ring(side)]
    background = _grey_percentiles(ring, (50.0,))[0]
    flat = (np.abs(blur - background[:, None, None]) < FLAT_LEVELS).astype(np.float32)
    flat_rows, flat_cols = flat.sum(2), flat.sum(1)
    flat_count = flat_rows.sum(1)
    n_flat = np.maximum(flat_count, 1)
    residual = np.abs(x - median)
    highpass = x - blur
    impulses = (residual > IMPULSE_LEVELS).astype(np.float32)
    rows = np.einsum("nij,nij->ni", blur, flat) / np.maximum(flat_rows, 1)
    cols = np.einsum("nij,nij->nj", blur, flat) / np.maximum(flat_cols, 1)
    streaks = np.abs(np.diff(rows, axis=1)).mean(1) + np.abs(np.diff(cols, axis=1)).mean(1)
    # percentiles on every second pixel in each direction: a quarter of the partition work
    b = blur[:, ::2, ::2]
    lap = np.abs(b[:, :-2, 1:-1] + b[:, 2:, 1:-1] + b[:, 1:-1, :-2] + b[:, 1:-1, 2:]
                 - 4 * b[:, 1:-1, 1:-1]).reshape(n, -1)  # fmt: skip
    # the gradient at every second pixel (i, j) of the first S-1 rows and columns
    at = x[:, : side - 1 : 2, : side - 1 : 2]
    grad = np.hypot(x[:, : side - 1 : 2, 1::2] - at, x[:, 1::2, : side - 1 : 2] - at)
    q = _grey_percentiles(images[:, ::2, ::2].reshape(n, -1), (1.0, 10.0))
    contrast = background - q[0]
    columns = (
        background,
        contrast,
        background - q[1],
        flat_count / (side * side),
        np.log(np.einsum("nij,nij->n", residual, flat) / n_flat + 0.05),
        np.log(residual.mean((1, 2)) + 0.05),
        np.log(np.sqrt(np.einsum("nij,nij,nij->n", highpass, highpass, flat) / n_flat) + 0.05),
        np.log(np.einsum("nij,nij->n", impulses, flat) / n_flat + 1e-3),
        np.log(streaks + 1e-2),
        np.log(_top_percentile(lap, 99.0) + 1e-2),
        _top_percentile(grad.reshape(n, -1), 99.0) / (contrast + 5.0),
        np.log(ring.astype(np.float32).std(1) + 0.1),
    )
    return np.stack(columns, 1).astype(np.float32)


__all__ = ["NAMES", "image_stats"]
