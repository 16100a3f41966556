"""The outline of a synthetic otolith: the fields its colour, relief and defects are drawn on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Specimen:
    """The geometry fields of one otolith on an ``size`` x ``size`` canvas (all float32)."""

    size: int
    rho: np.ndarray  # 0 at the centre, 1 on the (lobed) margin
    ring_rho: np.ndarray  # like rho, but the lobes fade towards the core (growth zones)
    u: np.ndarray  # coordinates along the long axis (pixels, + towards the rostrum)
    v: np.ndarray  # across it (pixels)
    a: float  # semi-major axis in pixels
    b: float  # semi-minor axis in pixels
    centre: tuple[float, float]
    angle: float  # rotation of the long axis (radians)

    def alpha(self) -> np.ndarray:
        """Soft body mask: 1 inside, 0 outside, about one pixel of anti-aliased edge."""
        return np.clip(0.5 + (1.0 - self.rho) * (0.5 * (self.a + self.b)), 0.0, 1.0)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise (float32, about unit std) from a ``cells`` x ``cells`` grid."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def draw_specimen(rng: np.random.Generator, size: int) -> Specimen:
    """Outline: ellipse tapered into a teardrop, low lobes, crenellation, a rostral notch."""
    c = size / 2 + rng.uniform(-0.04, 0.04, 2) * size
    a = size * rng.uniform(0.30, 0.40)
    b = a * rng.uniform(0.52, 0.72)
    angle = rng.uniform(0, 2 * math.pi)
    taper = rng.uniform(0.0, 0.3)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xs - np.float32(c[0]), ys - np.float32(c[1])
    u = dx * np.float32(math.cos(angle)) + dy * np.float32(math.sin(angle))
    v = -dx * np.float32(math.sin(angle)) + dy * np.float32(math.cos(angle))
    v_eff = v / (1.0 - taper * np.clip(u / a, -1.0, 1.0))  # narrower towards the rostrum (+u)
    rho = np.sqrt((u / a) ** 2 + (v_eff / b) ** 2)
    phi = np.arctan2(v_eff / b, u / a)
    margin = np.ones_like(rho)
    for k in (2, 3, 4):
        margin += rng.uniform(0.0, 0.035) * np.cos(k * phi + rng.uniform(0, 2 * math.pi))
    k = int(rng.integers(12, 30))
    dorsal = 0.35 + 0.65 * np.clip(np.sin(phi) * (1 if rng.random() < 0.5 else -1), 0, 1)
    margin += rng.uniform(0.01, 0.035) * dorsal * np.cos(k * phi + rng.uniform(0, 2 * math.pi))
    notch_at = rng.uniform(0.15, 0.45) * (1 if rng.random() < 0.5 else -1)
    margin -= rng.uniform(0.04, 0.11) * np.exp(-(((phi - notch_at) / 0.09) ** 2))
    ring_rho = rho / (1.0 + (margin - 1.0) * np.clip(rho, 0, 1) ** 2)
    return Specimen(size, rho / margin, ring_rho, u, v, float(a), float(b), (c[0], c[1]), angle)


__all__ = ["Specimen", "draw_specimen", "smooth_noise"]
