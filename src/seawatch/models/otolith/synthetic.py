"""Synthetic otoliths (sagittae under reflected light) with and without defects (numpy + OpenCV).

A specimen is drawn in its own frame from a few fields computed over the whole image: the
normalised distance ``rho`` from the centre to a lobed, crenellated, teardrop-shaped margin
(``rho = 1`` on the margin), and its angle. From them come the body's soft mask, the
alternating opaque and translucent growth increments around a core (narrowing towards the
edge), the sulcus groove along the long axis, a dome-shaped relief lit from one direction,
a white-to-cream colour per specimen, surface grain, vignetting, focus and sensor noise, on a
dark background. Defects (:data:`ANOMALY_TYPES`) are drawn by :mod:`._defects`.

Every random choice of the specimen, its lighting and its noise comes from ``rng`` in the same
order whatever the defect, and the defect draws from its own child stream: the same seed
gives the same specimen with or without a defect. No torch: the daemon's demo uses this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from seawatch.models.otolith import _defects
from seawatch.models.otolith._shape import Specimen, draw_specimen, smooth_noise

ANOMALY_TYPES: tuple[str, ...] = _defects.ANOMALY_TYPES
COLOUR_ONLY_TYPES: tuple[str, ...] = _defects.COLOUR_ONLY_TYPES
NORMAL = "normal"

_WHITE = np.array([236.0, 241.0, 244.0], np.float32)  # BGR
_CREAM = np.array([176.0, 219.0, 240.0], np.float32)


def _albedo(spec: Specimen, rng: np.random.Generator) -> np.ndarray:
    """Body colour (BGR float32, 0..255) with growth zones, core, sulcus and grain."""
    shape = spec.rho.shape
    n_rings = rng.uniform(4.0, 10.0)
    gamma = np.float32(rng.uniform(0.75, 1.2))
    wobble = smooth_noise(rng, shape, 5) * np.float32(rng.uniform(0.06, 0.16))
    r = np.clip(spec.ring_rho, 0, None)
    w = np.float32(n_rings) * r**gamma + wobble  # zones narrow towards the edge when gamma < 1
    for k in (1.0, 2.0):  # uneven years: some zones wider than others
        w += np.float32(rng.uniform(0.1, 0.35) / k) * np.sin(
            np.float32(k * math.pi * rng.uniform(1.5, 3.5)) * r + np.float32(rng.uniform(0, 6.3))
        )
    bias = np.float32(rng.uniform(-0.5, 0.0))  # opaque zones wider than the translucent ones
    zones = 0.5 + 0.5 * np.tanh(np.float32(2.5) * (np.cos(np.float32(2 * math.pi) * w) - bias))
    contrast = np.float32(rng.uniform(0.1, 0.28))
    base = (_WHITE + (_CREAM - _WHITE) * rng.uniform(0, 1) + rng.normal(0, 4, 3)).astype(np.float32)
    tint = np.array([0.9, 0.96, 1.0], np.float32)  # translucent zones: greyer, more yellow
    dark = 1.0 - zones
    colour = base[None, None, :] * (1.0 - contrast * dark)[..., None]
    colour *= 1.0 - (1.0 - tint)[None, None, :] * dark[..., None]
    edge = np.clip((spec.rho - 0.82) / 0.18, 0, 1)  # thin translucent margin
    core = np.exp(-((spec.rho / 0.06) ** 2))  # dark primordium in an opaque nucleus
    light = 1.0 - 0.22 * edge**2 - 0.3 * core + 0.08 * np.exp(-((spec.rho / 0.16) ** 2))
    # sulcus: a groove along the long axis, wider at the ostium (rostral end)
    s = spec.size / 256
    v0, bend = rng.uniform(-0.15, 0.15) * spec.b, rng.uniform(-0.6, 0.6) / spec.a
    along = spec.u / spec.a
    width = spec.b * rng.uniform(0.08, 0.13) * (1.0 + 0.8 * np.clip(along, 0, 1))
    dist = (spec.v - v0 - bend * spec.u**2) / width
    extent = np.clip((along + 0.6) / 0.15, 0, 1) * np.clip((0.8 - along) / 0.15, 0, 1)
    groove = np.exp(-(dist**2)) * extent
    rim = np.exp(-(((dist - 1.6) / 0.5) ** 2)) * extent
    light *= 1.0 - rng.uniform(0.18, 0.38) * groove + 0.07 * rim
    grain = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 0.8 * s + 0.3)
    light *= 1.0 + rng.uniform(0.03, 0.07) * grain
    return colour * light[..., None]


def _shading(spec: Specimen, rng: np.random.Generator) -> np.ndarray:
    """Lambert shading of a dome-shaped body lit from a random direction (float32)."""
    height = np.sqrt(np.clip(1.0 - spec.rho**2, 0, 1)) * spec.b * rng.uniform(0.3, 0.6)
    gy, gx = np.gradient(height)
    azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(0.6, 1.25)
    lx, ly = math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation)
    lz = math.sin(elevation)
    norm = np.sqrt(gx**2 + gy**2 + 1.0)
    lambert = np.clip((-gx * lx - gy * ly + lz) / norm, 0, 1)
    ambient = rng.uniform(0.25, 0.45)
    return (ambient + (1 - ambient) * lambert) * rng.uniform(0.78, 1.12)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dark, slightly tinted, uneven tray (BGR float32)."""
    level = rng.uniform(8, 32) + rng.normal(0, 3, 3)
    blotch = smooth_noise(rng, (size, size), 3) * rng.uniform(1, 4)
    return np.clip(level[None, None, :] + blotch[..., None], 0, None).astype(np.float32)


def _vignette(rng: np.random.Generator, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (0.5 * size) ** 2
    return 1.0 - rng.uniform(0.05, 0.3) * r2 / 2


def render_otolith(
    rng: np.random.Generator, *, size: int = 256, anomaly: str | None = None
) -> np.ndarray:
    """Render one otolith photograph: ``size`` x ``size`` x 3 uint8, OpenCV BGR order.

    ``anomaly`` is ``None`` (a normal specimen) or one of :data:`ANOMALY_TYPES` or
    :data:`COLOUR_ONLY_TYPES` (drawn on request only).
    """
    known = ANOMALY_TYPES + COLOUR_ONLY_TYPES
    if anomaly is not None and anomaly not in known:
        msg = f"unknown anomaly {anomaly!r}; expected None or one of {', '.join(known)}"
        raise ValueError(msg)
    if size < 32:
        msg = f"size must be at least 32 pixels, got {size}"
        raise ValueError(msg)
    spec = draw_specimen(rng, size)
    colour = _albedo(spec, rng)
    shade = _shading(spec, rng)
    background = _background(rng, size)
    vignette = _vignette(rng, size)
    focus = rng.uniform(0.25, 0.8) * size / 256
    noise_sigma = rng.uniform(1.5, 4.0)
    noise_seed = int(rng.integers(2**63))
    defect = _defects.Defect(np.random.default_rng(int(rng.integers(2**63))), spec)
    alpha = spec.alpha()
    if anomaly == "vaterite":
        colour, shade = defect.vaterite(colour, shade, alpha)
    elif anomaly == "broken":
        alpha = defect.broken(alpha)
    elif anomaly == "crack":
        colour = defect.crack(colour, alpha)
    elif anomaly == "stain":
        colour = defect.stain(colour, alpha)
    image = background * (1.0 - alpha[..., None]) + colour * (shade * alpha)[..., None]
    if anomaly == "debris":
        image = defect.debris(image, alpha)
    if anomaly == "blur":
        focus = defect.blur_sigma()
    image = cv2.GaussianBlur(image * vignette[..., None], (0, 0), focus)
    noise = np.random.default_rng(noise_seed).standard_normal(image.shape, dtype=np.float32)
    image += noise * np.float32(noise_sigma)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def make_dataset(
    rng: np.random.Generator,
    *,
    n_normal: int,
    n_per_anomaly: int = 0,
    size: int = 256,
    anomalies: Sequence[str] = ANOMALY_TYPES,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n_normal`` normal specimens, then ``n_per_anomaly`` of each anomaly type.

    Returns the stacked images (each passed through ``transform`` when given, else the BGR
    renders) and their labels (``"normal"`` or the anomaly type), in that order (unshuffled).
    ``progress`` is called with 1 after each image.
    """
    if n_normal < 0 or n_per_anomaly < 0:
        msg = f"counts must be >= 0, got n_normal={n_normal}, n_per_anomaly={n_per_anomaly}"
        raise ValueError(msg)
    labels = [NORMAL] * n_normal + [t for t in anomalies for _ in range(n_per_anomaly)]
    images = []
    for label in labels:
        image = render_otolith(rng, size=size, anomaly=None if label == NORMAL else label)
        images.append(image if transform is None else transform(image))
        if progress is not None:
            progress(1)
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.array([], dtype="<U8")
    return np.stack(images), np.array(labels)


__all__ = ["ANOMALY_TYPES", "COLOUR_ONLY_TYPES", "NORMAL", "make_dataset", "render_otolith"]
