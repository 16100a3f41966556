"""Fish crop preprocessing: the one function training, evaluation and the daemon share.

numpy + OpenCV only. :func:`prepare_fish`: any decoded crop (gray, BGR or BGRA; 8 or 16
bit) becomes float32 3 x H x W RGB 0..255 at the model's input size (:func:`fit_crop`); the
graph normalises.
"""

from __future__ import annotations

import cv2
import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.preprocess import planar_float32


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 scaled by the smallest power of two that holds its maximum (as for
    plankton), so 10- to 14-bit cameras in 16-bit containers keep their contrast."""
    if image.dtype == np.uint16:
        bits = max(8, int(image.max()).bit_length())
        return (image >> (bits - 8)).astype(np.uint8)
    if image.dtype != np.uint8:
        msg = f"image dtype {image.dtype} is not supported; expected uint8 or uint16"
        raise ValueError(msg)
    return image


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """A decoded image (H x W gray, H x W x 3 BGR, H x W x 4 BGRA; uint8/uint16) -> RGB uint8
    (16-bit data scaled by :func:`to_uint8`)."""
    image = to_uint8(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        return cv2.cvtColor(image, code)
    msg = f"image shape {image.shape} is not H x W, H x W x 3 or H x W x 4"
    raise ValueError(msg)


def fit_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a crop to ``height`` x ``width`` (area interpolation when shrinking).

    The aspect is not kept, as usual for re-ID inputs: a detector's tight crop then always
    spans the fish from snout (left) to tail tip (right), which the network's positional
    head relies on; only the body depth stretches a little when the box is looser or tighter.
    """
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        msg = f"image of shape {image.shape} is empty"
        raise ValueError(msg)
    if (h, w) == (height, width):
        return image
    shrink = h > height or w > width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def fish_input8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A decoded fish crop -> ``height`` x ``width`` x 3 uint8 RGB: the model input before
    its float conversion (:func:`prepare_fish`, or :func:`planar_batch` for a batch)."""
    return fit_crop(to_rgb8(image), height, width)


def prepare_fish(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A decoded fish crop -> the model input: float32 3 x ``height`` x ``width`` RGB 0..255."""
    return planar_float32(fish_input8(image, height, width))


def sample_inputs(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """``n`` model inputs like live ones: synthetic side views of up to 16 individuals."""
    from seawatch.models.fish.synthetic import make_individuals, render_fish

    rng = np.random.default_rng(seed)
    fish = make_individuals(max(1, min(n, 16)), seed=seed)
    height, width = card.input.height, card.input.width
    return np.stack(
        [prepare_fish(render_fish(fish[i % len(fish)], rng), height, width) for i in range(n)]
    )


def model_input(card: ModelCard, image: np.ndarray) -> np.ndarray:
    """One decoded crop -> one model input (3 x H x W float32 RGB)."""
    return prepare_fish(image, card.input.height, card.input.width)


__all__ = ["fish_input8", "fit_crop", "model_input", "prepare_fish", "sample_inputs", "to_rgb8"]
