"""Generic textured images for pretraining the teacher: a colour "dead leaves" model.

Occluding shapes (discs, ellipses, polygons, thin lines) with sizes drawn from a power law,
random colours and, for some, stripes or grain: images with the statistics of natural
scenes (edges at every scale, occlusions, colour), which Baradad et al. (NeurIPS 2021,
"Learning to See by Looking at Noise") found to pretrain useful features. numpy + OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_SHIFT = 4


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random BGR colour, biased towards the muted tones of real scenes."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 200), rng.uniform(20, 250)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def dead_leaves(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One ``size`` x ``size`` BGR uint8 image of overlapping shapes, lines and textures."""
    image = np.empty((size, size, 3), np.float32)
    image[:] = _colour(rng)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    count = int(rng.integers(30, 100))
    radii = np.minimum(size * 0.04 / np.maximum(rng.random(count), 0.01) ** 0.6, size * 0.6)
    for radius in np.sort(radii)[::-1]:  # power-law sizes, the large ones underneath
        x, y = rng.uniform(-0.1, 1.1, 2) * size
        mask = np.zeros((size, size), np.uint8)
        centre = (round(x * (1 << _SHIFT)), round(y * (1 << _SHIFT)))
        kind = rng.random()
        if kind < 0.4:
            axes = (
                round(radius * (1 << _SHIFT)),
                round(radius * rng.uniform(0.3, 1) * (1 << _SHIFT)),
            )
            cv2.ellipse(
                mask, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, _SHIFT
            )
        elif kind < 0.75:
            n = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * math.pi, n))
            radii = radius * rng.uniform(0.4, 1.0, n)
            poly = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], 1)
            poly = np.round(poly * (1 << _SHIFT)).astype(np.int32)
            cv2.fillPoly(mask, [poly], 255, cv2.LINE_AA, _SHIFT)
        else:
            a = rng.uniform(0, 2 * math.pi)
            end = (x + 2 * radius * math.cos(a), y + 2 * radius * math.sin(a))
            tip = (round(end[0] * (1 << _SHIFT)), round(end[1] * (1 << _SHIFT)))
            cv2.line(mask, centre, tip, 255, int(rng.integers(1, 4)), cv2.LINE_AA, _SHIFT)
        bx, by, bw, bh = cv2.boundingRect(mask)
        if bw == 0 or bh == 0:
            continue
        box = (slice(by, by + bh), slice(bx, bx + bw))
        m = mask[box].astype(np.float32)[..., None] * (1.0 / 255.0)
        fill = np.broadcast_to(_colour(rng), (bh, bw, 3))
        if rng.random() < 0.3:  # stripes of a second colour
            period, a = rng.uniform(3, 16), rng.uniform(0, math.pi)
            phase = xs[box] * math.cos(a) + ys[box] * math.sin(a)
            wave = 0.5 + 0.5 * np.sin(phase * (2 * math.pi / period))
            fill = fill + (_colour(rng) - fill) * wave[..., None]
        elif rng.random() < 0.3:  # grain
            grain = rng.standard_normal((bh, bw, 1)).astype(np.float32)
            fill = fill * (1 + rng.uniform(0.05, 0.25) * grain)
        image[box] = image[box] * (1.0 - m) + fill * m
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    image += rng.standard_normal(image.shape).astype(np.float32) * rng.uniform(1, 5)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


__all__ = ["dead_leaves"]
