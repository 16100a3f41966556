"""Another lab's otoliths: the synthetic generator under another stain and another light.

What a user's scanner may show next to the training drawings: specimens cleared and stained
blue-violet (alizarin-like mounts), photographed under a harder, cooler light on a lighter
tray, with another camera's gamma. The same specimens and defects as
:func:`~seawatch.models.otolith.synthetic.render_otolith`, only seen differently: the domain
the re-distillation test and benchmark (:mod:`seawatch.models.otolith.redistil`) adapt to.
numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seawatch.models.otolith.synthetic import ANOMALY_TYPES, NORMAL, render_otolith

#: BGR gain of the stain (blue up, red down) and the tray's added light (BGR, 0..255).
_STAIN = np.array([1.2, 0.85, 0.8], np.float32)
_TRAY = np.array([36.0, 28.0, 22.0], np.float32)


def other_lab(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A BGR uint8 render as the other lab photographs it (stain, gamma, light, tray)."""
    x = image.astype(np.float32) / 255.0
    x = x ** np.float32(rng.uniform(0.65, 0.8))  # the other camera's gamma: brighter mid-tones
    x = x * _STAIN * rng.uniform(0.93, 1.07, 3).astype(np.float32)
    tray = (1.0 - x.mean(2, keepdims=True)) * _TRAY / 255.0  # lighter where the image is dark
    return np.clip((x + tray) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_other_lab(
    rng: np.random.Generator, *, size: int = 256, anomaly: str | None = None
) -> np.ndarray:
    """One otolith photograph of the other lab (``size`` x ``size`` x 3 uint8 BGR)."""
    return other_lab(render_otolith(rng, size=size, anomaly=anomaly), rng)


def other_lab_set(
    rng: np.random.Generator,
    *,
    n_normal: int,
    n_per_anomaly: int = 0,
    size: int = 256,
    anomalies: Sequence[str] = ANOMALY_TYPES,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_normal`` normal specimens then ``n_per_anomaly`` of each defect, and their labels."""
    labels = [NORMAL] * n_normal + [a for a in anomalies for _ in range(n_per_anomaly)]
    images = [render_other_lab(rng, size=size, anomaly=None if a == NORMAL else a) for a in labels]
    return np.stack(images), np.array(labels)


__all__ = ["other_lab", "other_lab_set", "render_other_lab"]
