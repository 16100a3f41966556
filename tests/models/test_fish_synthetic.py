"""The synthetic zebrafish: many individuals, each with its own stable pattern."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.fish.synthetic import (
    make_individual,
    make_individuals,
    render_fish,
    render_fish_with_mask,
)


def test_at_least_40_distinct_individuals_with_stable_names() -> None:
    fish = make_individuals(48, seed=0)
    names = [f.name for f in fish]
    assert len(set(names)) == 48 and names[7] == "zf-0-0007"
    textures = np.stack([f.texture[::2, ::2] for f in fish]).reshape(48, -1)
    # every pair of patterns differs on a sizeable share of the skin
    differ = (np.abs(textures[:, None] - textures[None]) > 0.5).mean(-1)
    off_diagonal = differ[~np.eye(48, dtype=bool)]
    assert off_diagonal.min() > 0.05, off_diagonal.min()
    with pytest.raises(ValueError, match="at least 1"):
        make_individuals(0)


def test_an_individual_does_not_depend_on_how_many_are_made() -> None:
    few, many = make_individuals(5, seed=3), make_individuals(60, seed=3)
    for a, b in zip(few, many[:5], strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.texture, b.texture)
    np.testing.assert_array_equal(make_individual(42, 3).texture, many[42].texture)
    assert not np.array_equal(make_individual(42, 4).texture, many[42].texture)  # other seed


def test_rendering_is_deterministic_and_the_pattern_belongs_to_the_individual() -> None:
    a, b = make_individuals(2, seed=0)
    first = render_fish(a, np.random.default_rng(5), height=64, width=160)
    again = render_fish(a, np.random.default_rng(5), height=64, width=160)
    other = render_fish(b, np.random.default_rng(5), height=64, width=160)  # same pose/scene
    assert first.shape == (64, 160, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    _, skin = render_fish_with_mask(a, np.random.default_rng(5), height=64, width=160)
    # same pose and scene, other fish: the images differ on the skin, hardly elsewhere
    diff = np.abs(first.astype(int) - other.astype(int)).max(-1)
    assert diff[skin].mean() > 4 * max(1.0, diff[~skin].mean())


def test_renders_vary_pose_and_scene_and_keep_skin_in_view() -> None:
    fish = make_individual(0, 0)
    rng = np.random.default_rng(0)
    images, skins = zip(*(render_fish_with_mask(fish, rng) for _ in range(12)), strict=True)
    stack = np.stack(images).astype(np.float32)
    assert stack.std(0).mean() > 10  # pose, light and background change between renders
    share = np.array([s.mean() for s in skins])
    assert (share > 0.1).all() and (share < 0.7).all()
    wide = render_fish(fish, rng, height=96, width=300)
    assert wide.shape == (96, 300, 3)
    with pytest.raises(ValueError, match="at least 16"):
        render_fish(fish, rng, height=8, width=160)
