"""The fish view quality score (issue 28): sharp views pass, blurred and half-hidden do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.models.fish.quality import FLAT_STD, MAX_FLAT, flat_share, view_quality


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 220, (64, 160, 3), dtype=np.uint8)


def test_a_sharp_view_scores_high_and_a_blurred_one_low() -> None:
    sharp = _textured()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    assert view_quality(sharp) > 10 * view_quality(blurred)


def test_a_view_half_hidden_by_a_flat_occluder_scores_zero() -> None:
    view = _textured()
    hidden = view.copy()
    mask = np.zeros(view.shape[:2], np.uint8)
    cv2.ellipse(mask, (80, 32), (50, 40), 0, 0, 360, 1, -1)  # about half the input
    hidden[mask > 0] = 60
    assert flat_share(cv2.cvtColor(hidden, cv2.COLOR_RGB2GRAY)[16:48, 24:136]) > MAX_FLAT
    assert view_quality(hidden) == 0.0
    assert view_quality(view) > 0  # the same view unhidden is sharp
    # a small flat patch on the body (a shadow) leaves the view usable
    patch = view.copy()
    patch[16:32, 40:72] = 60
    assert flat_share(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)[16:48, 24:136]) > 0
    assert view_quality(patch) > 0


def test_flat_wall_around_the_fish_does_not_count_as_hidden() -> None:
    view = np.full((64, 160, 3), 90, np.uint8)  # a whole frame's crop: wall all around
    view[16:48, 24:136] = _textured()[16:48, 24:136]
    assert flat_share(cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)) > 0.5
    assert view_quality(view) > 0


def test_a_view_that_is_not_a_model_input_is_refused() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        view_quality(np.zeros((64, 160), np.uint8))


def _flat_share_plain(gray: np.ndarray, block: int = 8) -> float:
    """The definition: numpy's std of each whole tile (the fast version must agree)."""
    h, w = gray.shape[0] // block * block, gray.shape[1] // block * block
    tiles = gray[:h, :w].astype(np.float64).reshape(h // block, block, w // block, block)
    return float((tiles.std(axis=(1, 3)) < FLAT_STD).mean())


def test_the_fast_flat_share_counts_the_same_tiles_as_the_definition() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):  # spreads around FLAT_STD, flat bands, odd sizes (partial tiles)
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 120))
        base, spread = int(rng.integers(0, 256)), float(rng.uniform(0.0, 2 * FLAT_STD))
        gray = np.clip(base + rng.normal(0.0, spread, (h, w)), 0, 255).astype(np.uint8)
        gray[:, : int(rng.integers(0, w))] = base
        assert flat_share(gray) == _flat_share_plain(gray), (h, w, spread)
