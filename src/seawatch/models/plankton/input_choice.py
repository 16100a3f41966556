"""The classifier's input chosen from a user's images: gray or colour, and the square side.

- **colour**: an image is colour when its channels differ (mean absolute difference between
  B, G and R over :data:`COLOUR_LEVELS` grey levels; a gray image stored as a 3-channel JPEG
  stays well under it); the folder is colour when at least half its images are.
- **size**: the median of the images' longer sides (``prepare_roi`` pads each crop square on
  its longer side), rounded to the nearest of :data:`SIZES`. Smaller crops are upsampled, so
  a folder of 40 px crops still gets 64; larger ones keep more detail at 96 or 128.

At most :data:`SAMPLE` images, spread evenly over the folder, are looked at. numpy and OpenCV
only. A card without these choices (the committed model) is 64 px gray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.image_files import read_image

SIZES: tuple[int, ...] = (64, 96, 128)
DEFAULT_SIZE, DEFAULT_CHANNELS = 64, 1  # the committed model; a card without choices
COLOUR_LEVELS = 2.0  # mean |B-G|, |G-R|, |B-R| over which an image counts as colour
COLOUR_SHARE = 0.5  # share of colour images over which the folder is colour
SAMPLE = 400
Colour = Literal["auto", "gray", "rgb"]


@dataclass(frozen=True, slots=True)
class InputLook:
    """What the images look like: how many were read, the share in colour, the median and
    quartiles of their longer sides."""

    images: int
    colour_share: float
    side_median: float
    side_quartiles: tuple[float, float]

    def summary(self) -> dict[str, object]:
        """For the card's training data summary."""
        return {
            "images_looked_at": self.images,
            "colour_share": round(self.colour_share, 3),
            "longer_side_median_px": round(self.side_median, 1),
            "longer_side_quartiles_px": [round(q, 1) for q in self.side_quartiles],
        }


def channel_spread(image: np.ndarray) -> float:
    """Mean absolute difference between an image's colour channels (0 for gray)."""
    if image.ndim != 3 or image.shape[2] < 3:
        return 0.0
    bgr = image[:, :, :3].astype(np.float32)
    if image.dtype == np.uint16:
        bgr *= 255.0 / max(float(image.max()), 1.0)
    b, g, r = bgr[:, :, 0], bgr[:, :, 1], bgr[:, :, 2]
    return float((np.abs(b - g).mean() + np.abs(g - r).mean() + np.abs(b - r).mean()) / 3)


def look_at(paths: Sequence[Path]) -> InputLook:
    """Colour share and size distribution of (at most :data:`SAMPLE` of) ``paths``;
    unreadable files are passed over (the loader reports them)."""
    if not paths:
        raise ConfigError("no images to choose the classifier's input from")
    picks = np.unique(np.linspace(0, len(paths) - 1, min(SAMPLE, len(paths))).astype(int))
    sides, colour = [], []
    for i in picks:
        try:
            image = read_image(paths[i])
        except (ValueError, OSError):
            continue
        sides.append(max(image.shape[:2]))
        colour.append(channel_spread(image) > COLOUR_LEVELS)
    if not sides:
        msg = f"none of the {len(picks)} images looked at could be read (e.g. {paths[0]})"
        raise ConfigError(msg)
    q1, median, q3 = np.percentile(sides, [25, 50, 75])
    return InputLook(len(sides), float(np.mean(colour)), float(median), (float(q1), float(q3)))


def choose_size(look: InputLook | None, forced: int | None = None) -> int:
    """The square side: ``forced`` when given (one of :data:`SIZES`), else the nearest of
    :data:`SIZES` to the median longer side (ties: the smaller)."""
    if forced is not None:
        if forced not in SIZES:
            msg = f"--input-size {forced} is not one of {list(SIZES)}; pick one of those"
            raise ConfigError(msg)
        return forced
    if look is None:
        return DEFAULT_SIZE
    return min(SIZES, key=lambda s: (abs(s - look.side_median), s))


def choose_channels(look: InputLook | None, colour: Colour = "auto") -> int:
    """1 (gray) or 3 (colour): ``gray``/``rgb`` as asked, ``auto`` from the images."""
    if colour == "gray":
        return 1
    if colour == "rgb":
        return 3
    if colour != "auto":
        msg = f"--colour {colour!r} is not one of auto, gray, rgb"
        raise ConfigError(msg)
    if look is None:
        return DEFAULT_CHANNELS
    return 3 if look.colour_share >= COLOUR_SHARE else 1


__all__ = [
    "COLOUR_LEVELS",
    "COLOUR_SHARE",
    "DEFAULT_CHANNELS",
    "DEFAULT_SIZE",
    "SIZES",
    "Colour",
    "InputLook",
    "channel_spread",
    "choose_channels",
    "choose_size",
    "look_at",
]
