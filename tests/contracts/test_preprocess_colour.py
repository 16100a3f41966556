"""Colour preprocessing: the colour crop is the gray one per channel for a gray image, dark
field is inverted on every channel, and the model tensor keeps the channels apart."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.preprocess import (
    batch_tensor,
    nchw,
    prepare_crop,
    prepare_roi,
    prepare_roi_colour,
    to_colour8,
)


def _roi(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = np.full((70, 50), 220, np.uint8)
    gray[20:50, 10:40] = rng.integers(20, 90, (30, 30), dtype=np.uint8)
    return gray


def test_a_gray_image_given_as_colour_prepares_to_the_gray_crop_on_each_channel():
    gray = _roi()
    colour = prepare_roi_colour(to_colour8(gray), 96)
    assert colour.shape == (96, 96, 3) and colour.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(colour[:, :, c], prepare_roi(gray, 96))


def test_dark_field_colour_is_inverted_on_every_channel_and_colour_survives():
    bgr = np.zeros((60, 60, 3), np.uint8)
    bgr[20:40, 20:40] = (200, 120, 40)  # a bright orange-ish object on black
    crop = prepare_roi_colour(bgr, 64)
    centre = crop[32, 32].astype(int)
    assert tuple(crop[0, 0]) == (255, 255, 255)  # the black background became light
    assert tuple(centre) == (55, 135, 215)  # each channel inverted, not mixed
    assert prepare_crop(bgr, 64, 3).shape == (64, 64, 3)
    assert prepare_crop(bgr, 64, 1).shape == (64, 64)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        prepare_crop(bgr, 64, 2)


def test_sixteen_bit_and_alpha_images_become_eight_bit_bgr():
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 300)[:, :, None].repeat(4, 2)
    out = to_colour8(deep)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8 and out.max() > 200
    with pytest.raises(ValueError, match="not gray, BGR or BGRA"):
        to_colour8(np.zeros((3, 4, 5), np.uint8))


def test_the_model_tensor_is_nchw_with_the_channels_in_order():
    crops = [np.dstack([np.full((8, 8), v, np.uint8) for v in (1, 2, 3)]) for _ in range(2)]
    tensor = batch_tensor(crops)
    assert tensor.shape == (2, 3, 8, 8) and tensor.dtype == np.float32
    assert tensor[:, 0].max() == 1 and tensor[:, 2].min() == 3
    assert nchw(np.zeros((4, 8, 8), np.uint8)).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="N x S x S"):
        nchw(np.zeros((4, 8, 8, 2), np.uint8))
