"""Model-input layout helpers."""

from __future__ import annotations

import numpy as np

from seawatch.inference.preprocess import planar_float32


def test_planar_float32_is_the_channels_first_float_copy() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    planar = planar_float32(image)
    assert planar.dtype == np.float32 and planar.shape == (3, 5, 7)
    assert planar.flags.c_contiguous and not np.shares_memory(planar, image)
    np.testing.assert_array_equal(planar, image.transpose(2, 0, 1).astype(np.float32))
    assert planar[2, 4, 6] == image[4, 6, 2]
