"""The fast image statistics agree with the plain ones (``image_stats_plain.py``) on every
kind of crop the scorer meets: training taxa, drawn organisms, corrupted optics, noise,
flat and odd-sized crops."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.image_stats import image_stats
from seawatch.models.plankton.outliers import corrupted_set, outlier_set
from seawatch.models.plankton.synthetic import make_dataset
from tests.contracts.image_stats_plain import plain_image_stats


def _sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7_100_520)
    taxa, _ = make_dataset(4, rng, size=64)
    return {
        "taxa": taxa,
        "drawn organisms": outlier_set(24, 7_100_521),
        "corrupted optics": corrupted_set(24, 7_100_522),
        "noise": rng.integers(0, 256, (8, 64, 64), dtype=np.uint8),
        "flat": np.full((3, 64, 64), 200, np.uint8),
        "odd size": rng.integers(150, 230, (5, 63, 63), dtype=np.uint8),
        "larger": make_dataset(1, rng, size=96)[0],
    }


@pytest.mark.parametrize("name", list(_sets()))
def test_fast_statistics_equal_the_plain_ones(name: str) -> None:
    crops = _sets()[name]
    np.testing.assert_allclose(image_stats(crops), plain_image_stats(crops), rtol=1e-5, atol=1e-4)
