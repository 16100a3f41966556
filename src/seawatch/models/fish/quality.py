"""How usable one fish view is for re-identification: sharpness, zeroed when half hidden.

numpy + OpenCV only. The score is the variance of the Laplacian of the 64 x 160 gray model
input: a blurred view, and a small crop that the model's resize blew up, both have little
fine detail at that scale, so both score low. A view below the head's ``min_quality`` is
matched against the gallery but never enrolled and never decides a new fish on its own.

Occlusion: a half-hidden fish looks sharp, so the sharpness alone passes it, and such views
resemble each other more than their fish (the occluder is what they share): a provisional
id enrolled from them drew other fish's occluded views (issue 28). A view whose body (the
middle half of the input's height, 70 % of its width: a whole frame's crop has flat wall
around the fish) is flat (8 x 8 blocks of gray level spread under ``FLAT_STD``) over more
than ``MAX_FLAT`` of its area, an occluder or glare, scores 0. Chosen on development seed
7,100,499 (5th-95th percentile of the share): views occluded on purpose 0.59-0.75 as crops,
0.03-0.72 as cut from whole frames (a cut that keeps only the visible part passes); clean,
small or blurred views 0.00-0.14 either way. A textured occluder (another fish) is not
caught here; it shows as a low similarity to the tracklet's other views.
"""

from __future__ import annotations

import cv2
import numpy as np

FLAT_STD = 2.0  # gray levels: a block this even holds no detail
MAX_FLAT = 0.3  # share of the body's blocks that may be flat


def flat_share(gray: np.ndarray, block: int = 8) -> float:
    """Share of the ``block`` x ``block`` tiles of a 2-d gray image whose spread is under
    ``FLAT_STD`` (edges that do not fill a tile are left out)."""
    h, w = gray.shape[0] // block * block, gray.shape[1] // block * block
    if h == 0 or w == 0:
        return 1.0
    # each tile's variance as E[x^2] - E[x]^2 from two area-averaging resizes (exact block
    # means at an integer factor, float64): a tenth of numpy's std over a reshaped array
    g = gray[:h, :w].astype(np.float64)
    size = (w // block, h // block)
    mean = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
    mean_sq = cv2.resize(g * g, size, interpolation=cv2.INTER_AREA)
    return float((mean_sq - mean * mean < FLAT_STD**2).mean())


def view_quality(input8: np.ndarray, floor: float = 0.0) -> float:
    """Sharpness of one H x W x 3 uint8 RGB model input (variance of its Laplacian), 0 when
    more than ``MAX_FLAT`` of its body is flat (hidden).

    A view whose sharpness is under ``floor`` (the head's ``min_quality``) gets its sharpness
    without the flat-share test: it is a poor view hidden or not, and the test costs as much
    as the sharpness itself.
    """
    if input8.dtype != np.uint8 or input8.ndim != 3 or input8.shape[2] != 3:
        msg = f"expected an H x W x 3 uint8 model input, got {input8.dtype} {input8.shape}"
        raise ValueError(msg)
    gray = cv2.cvtColor(input8, cv2.COLOR_RGB2GRAY)
    # the variance from OpenCV's mean and deviation (float64 sums): a fifth of numpy's var
    sharpness = float(cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))[1][0, 0]) ** 2
    if sharpness < floor:
        return sharpness
    h, w = gray.shape
    if flat_share(gray[h // 4 : h - h // 4, w * 3 // 20 : w - w * 3 // 20]) > MAX_FLAT:
        return 0.0
    return sharpness


__all__ = ["FLAT_STD", "MAX_FLAT", "flat_share", "view_quality"]
