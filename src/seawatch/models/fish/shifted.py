"""A shifted look for the synthetic fish: another strain, another tank, another camera.

What a user's folders may look like next to the training drawings: a *leopard*-like strain
(each fish's stripes broken into rows of spots, still its own pattern), other body colours,
and another camera's colour response (the channels mixed) and exposure. Used by the
fine-tuning test and benchmark (:mod:`seawatch.models.fish.finetune`) as the user's data.
numpy + OpenCV only.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np

from seawatch.models.fish.synthetic import (
    TEX_U,
    TEX_V,
    Individual,
    make_individual,
    render_fish,
)

#: The camera's colour response: output BGR = MIX @ input BGR (a red-heavy sensor).
_MIX = np.array([[0.35, 0.25, 0.2], [0.2, 0.45, 0.35], [0.15, 0.55, 0.6]], np.float32)


def shifted_individual(index: int, seed: int) -> Individual:
    """Individual ``index`` of ``seed`` as the shifted strain: spots instead of stripes."""
    base = make_individual(index, seed)
    rng = np.random.default_rng([seed, index, 4021])
    u = np.linspace(0, 1, TEX_U)[None, :]
    v = np.linspace(-1, 1, TEX_V)[:, None]
    period = rng.uniform(0.035, 0.06)
    phase = rng.uniform(0, 2 * math.pi)
    spots = 0.5 + 0.5 * np.cos(2 * math.pi * u / period + phase + 3.0 * v)
    texture = np.clip(base.texture * (spots > 0.35), 0, 1).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.2)
    texture.setflags(write=False)
    return dataclasses.replace(
        base,
        texture=texture,
        stripe_bgr=tuple(float(c) for c in rng.uniform([0.05, 0.1, 0.25], [0.2, 0.3, 0.45])),
        light_bgr=tuple(float(c) for c in rng.uniform([0.55, 0.75, 0.7], [0.7, 0.9, 0.85])),
    )


def render_shifted(
    individual: Individual, rng: np.random.Generator, *, height: int = 64, width: int = 160
) -> np.ndarray:
    """One view (H x W x 3 uint8 BGR) through the other camera: mixed channels, exposure."""
    image = render_fish(individual, rng, height=height, width=width).astype(np.float32)
    mixed = image @ _MIX.T * rng.uniform(0.9, 1.4)
    return np.clip(mixed + rng.uniform(-10, 25), 0, 255).astype(np.uint8)


def write_folders(root: Path, n_individuals: int, views: int, seed: int, *, start: int = 0) -> Path:
    """``root/<individual>/<k>.png``: ``views`` shifted renders of each of ``n_individuals``
    (indices ``start``.. of generator ``seed``), some at another size as a detector crops."""
    root = Path(root)
    for index in range(start, start + n_individuals):
        fish = shifted_individual(index, seed)
        folder = root / fish.name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, index, 77])
        for k in range(views):
            scale = rng.uniform(0.8, 1.6) if rng.random() < 0.3 else 1.0
            image = render_shifted(fish, rng, height=round(64 * scale), width=round(160 * scale))
            cv2.imwrite(str(folder / f"{k:03d}.png"), image)
    return root


__all__ = ["render_shifted", "shifted_individual", "write_folders"]
