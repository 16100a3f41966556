"""How usable one fish view is for re-identification: a sharpness score of the model input.

numpy + OpenCV only. The score is the variance of the Laplacian of the 64 x 160 gray model
input: a blurred view, and a small crop that the model's resize blew up, both have little
fine detail at that scale, so both score low. A view below the head's ``min_quality`` is
matched against the gallery but never enrolled and never decides a new fish on its own.
Occlusion is not scored here (a half-hidden fish looks sharp); it shows as a low similarity
to the fish's other views of the same tracklet.
"""

from __future__ import annotations

import cv2
import numpy as np


def view_quality(input8: np.ndarray) -> float:
    """Sharpness of one H x W x 3 uint8 RGB model input (variance of its Laplacian)."""
    if input8.dtype != np.uint8 or input8.ndim != 3 or input8.shape[2] != 3:
        msg = f"expected an H x W x 3 uint8 model input, got {input8.dtype} {input8.shape}"
        raise ValueError(msg)
    gray = cv2.cvtColor(input8, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


__all__ = ["view_quality"]
