"""A thumbnail shrunk before its colour conversion has the pixels of one converted first."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.contracts.evidence import thumbnail


def _plain_thumbnail(image: np.ndarray, side: int) -> np.ndarray:
    """The order before issue 26 (to 8-bit BGR first, then the shrink), its call as it was."""
    if image.dtype == np.uint16:
        bits = max(8, int(image.max()).bit_length())
        image = (image >> (bits - 8)).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    h, w = image.shape[:2]
    if max(h, w) > side:
        f = side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    return image


@pytest.mark.parametrize("channels", [0, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_same_pixels_as_converting_first(channels: int, dtype: type) -> None:
    rng = np.random.default_rng(26)
    top = 256 if dtype == np.uint8 else 4096
    for h, w in [(129, 130), (300, 117), (256, 256), (1000, 37), (96, 96), (5, 700)]:
        shape = (h, w) if channels == 0 else (h, w, channels)
        image = rng.integers(0, top, shape).astype(dtype)
        for side in (128, 384):
            ours = thumbnail(image, side)
            np.testing.assert_array_equal(ours, _plain_thumbnail(image, side))
            assert ours.dtype == np.uint8 and ours.ndim == 3 and ours.shape[2] == 3
