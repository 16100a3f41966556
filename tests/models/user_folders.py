"""A user's labelled folder, made by the synthetic generator in seconds: ImageFolder trees of
gray or colour crops of a chosen size, for the own-folder training tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seawatch.models.plankton.synthetic import render_roi

# A tint along this (B, G, R) direction changes neither the gray level OpenCV computes
# (0.114 B + 0.587 G + 0.299 R) nor the channel mean: only a colour model can see it.
HIDDEN_TINT = np.array([1.0, 0.642, -1.642], np.float32)


def tint(gray: np.ndarray, sign: float, strength: float = 0.15) -> np.ndarray:
    """A gray crop as BGR, its object (the darker pixels) tinted along :data:`HIDDEN_TINT`
    (``sign`` +1 or -1); the background stays gray."""
    darkness = 255.0 - gray.astype(np.float32)
    bgr = gray.astype(np.float32)[:, :, None] + sign * strength * darkness[:, :, None] * HIDDEN_TINT
    return np.clip(np.rint(bgr), 0, 255).astype(np.uint8)


def scaled(roi: np.ndarray, side: int) -> np.ndarray:
    """``roi`` resized so its longer side is ``side`` px."""
    h, w = roi.shape[:2]
    f = side / max(h, w)
    return cv2.resize(roi, (max(1, round(w * f)), max(1, round(h * f))))


def write_folder(
    root: Path,
    classes: dict[str, tuple[str, float]],
    per_class: int,
    *,
    seed: int,
    side: int = 64,
    colour: bool = False,
) -> Path:
    """``root/<class>/<i>.png``: ``per_class`` renders of each class's taxon, longer side
    ``side`` (+-10 %), tinted by the class's sign when ``colour`` (sign 0: gray as BGR)."""
    rng = np.random.default_rng(seed)
    for name, (taxon, sign) in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            roi = scaled(render_roi(taxon, rng), int(side * rng.uniform(0.9, 1.1)))
            image = tint(roi, sign) if colour else roi
            assert cv2.imwrite(str(folder / f"{i}.png"), image)
    return root


__all__ = ["HIDDEN_TINT", "scaled", "tint", "write_folder"]
