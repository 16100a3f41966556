"""Model-input layout helpers."""

from __future__ import annotations

import numpy as np

from seawatch.contracts.preprocess import border_level, planar_batch, planar_float32


def test_planar_float32_is_the_channels_first_float_copy() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    planar = planar_float32(image)
    assert planar.dtype == np.float32 and planar.shape == (3, 5, 7)
    assert planar.flags.c_contiguous and not np.shares_memory(planar, image)
    np.testing.assert_array_equal(planar, image.transpose(2, 0, 1).astype(np.float32))
    assert planar[2, 4, 6] == image[4, 6, 2]


def test_planar_batch_equals_the_stack_of_single_conversions() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(4)]
    batch = planar_batch(images)
    assert batch.dtype == np.float32 and batch.shape == (4, 3, 5, 7)
    assert batch.flags.c_contiguous
    np.testing.assert_array_equal(batch, np.stack([planar_float32(i) for i in images]))


def test_border_level_is_numpys_median_of_the_border() -> None:
    rng = np.random.default_rng(2)
    for shape in [(1, 1), (1, 6), (5, 1), (2, 2), (7, 9), (8, 8), (31, 116)]:
        gray = rng.integers(0, 256, shape, dtype=np.uint8)
        border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
        assert border_level(gray) == float(np.median(border)), shape
