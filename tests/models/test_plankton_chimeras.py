"""Two-taxon chimeras, the near outliers of the OOD scorer's fit (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.plankton.chimeras import KINDS, chimera, chimera_set


def _flat_classes(values: tuple[int, ...], per_class: int = 6) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([np.full((per_class, 32, 32), v, np.uint8) for v in values])
    return images, np.repeat(np.arange(len(values)), per_class)


def test_halves_join_crops_of_two_different_classes() -> None:
    images, labels = _flat_classes((100, 104, 108))
    out = chimera_set(images, labels, 60, seed=3, kinds=("halves",))
    assert out.shape == (60, 32, 32) and out.dtype == np.uint8
    for c in out:
        # two sides of one line: pure pixels of two different classes, never of one
        low, high = int(c.min()), int(c.max())
        assert low != high and {low, high} <= {100, 104, 108}, (low, high)


def test_chimeras_are_reproducible_and_differ_from_their_sources() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(98, 103, (40, 32, 32)).astype(np.uint8)
    labels = np.arange(40) % 4
    images[:, 8:24, 8:24] = (20 + 15 * labels)[:, None, None]  # one grey level a class
    a = chimera_set(images, labels, 30, seed=1)
    assert np.array_equal(a, chimera_set(images, labels, 30, seed=1))
    assert not np.array_equal(a, chimera_set(images, labels, 30, seed=2))
    for c in a:
        changed = np.abs(c.astype(int)[None] - images) > 10
        assert changed.mean(axis=(1, 2)).min() > 0.01  # a new object, not a source crop


def test_a_mirror_is_symmetric_about_its_seam() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 255, (32, 32)).astype(np.uint8)
    out = chimera(a, a, "mirror", rng).astype(int)
    # some reflection of the output about a central axis matches it away from the soft seam
    flips = (out[:, ::-1], out[::-1, :])
    assert min(np.median(np.abs(out - f)) for f in flips) <= 1


def test_one_class_and_an_unknown_kind_are_refused() -> None:
    images, labels = _flat_classes((100,))
    with pytest.raises(ValueError, match="two classes"):
        chimera_set(images, labels, 4, seed=0)
    with pytest.raises(ValueError, match="unknown chimera kind"):
        chimera(images[0], images[1], "blend", np.random.default_rng(0))
    assert "halves" in KINDS
