"""Image statistics: they move with the instrument's noise, not only with the object."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.image_stats import NAMES, image_stats
from seawatch.models.plankton.synthetic import make_dataset

COLUMN = {name: i for i, name in enumerate(NAMES)}


def _crops(n: int = 24) -> np.ndarray:
    images, _ = make_dataset(n, np.random.default_rng(7_100_500), size=64)
    return images


def test_one_row_per_crop_and_a_batch_equals_its_parts() -> None:
    crops = _crops()
    stats = image_stats(crops)
    assert stats.shape == (len(crops), len(NAMES)) and stats.dtype == np.float32
    assert np.isfinite(stats).all()
    np.testing.assert_allclose(image_stats(crops[5:6])[0], stats[5], rtol=1e-5, atol=1e-5)
    assert image_stats(np.zeros((0, 64, 64), np.uint8)).shape == (0, len(NAMES))


def test_sensor_noise_and_hot_pixels_raise_their_statistics() -> None:
    crops = _crops()
    rng = np.random.default_rng(7_100_501)
    noisy = np.clip(crops + rng.normal(0, 8, crops.shape), 0, 255).astype(np.uint8)
    hot = crops.copy()
    hot[rng.random(hot.shape) < 0.005] = 0
    clean = image_stats(crops)
    assert (image_stats(noisy)[:, COLUMN["noise_flat"]] > clean[:, COLUMN["noise_flat"]]).all()
    more = image_stats(hot)[:, COLUMN["impulses"]] > clean[:, COLUMN["impulses"]]
    assert more.mean() > 0.9


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="uint8 N x S x S"):
        image_stats(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="uint8 N x S x S"):
        image_stats(np.zeros((64, 64), np.uint8))
