"""How each otolith defect is drawn onto a specimen (numpy + OpenCV, used by ``synthetic``).

Sizes span from obvious to subtle on purpose: a vaterite patch from ~2 % to ~30 % of the
body, a lost piece or a small chip, one hairline crack or several dark fractures, one speck or
a handful of particles and bubbles, a slight or a strong defocus. Vaterite keeps the body's
brightness (75-100 % of its mean) so it cannot be found by brightness alone: it differs by
its glassy blue-grey colour and by the missing growth pattern.

:data:`COLOUR_ONLY_TYPES` are drawn on request and are not in the default sets: a ``stain``
tints a region at the same luminance, pixel by pixel, and keeps the growth pattern, so a
gray image does not show it at all (the case for the detector's asymmetric input; lab
``experiments/otolith/colour_cues.py``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from seawatch.models.otolith._shape import Specimen

ANOMALY_TYPES: tuple[str, ...] = ("vaterite", "broken", "crack", "debris", "blur")
COLOUR_ONLY_TYPES: tuple[str, ...] = ("stain",)

_GLASS = np.array([1.0, 0.98, 0.91], np.float32)  # BGR ratios of vaterite: cool, clear grey
_GRAY = np.array([0.114, 0.587, 0.299], np.float32)  # BGR -> luminance, as cv2.cvtColor
# BGR tints of a stain: amber and rust (organic residue), green (algae), violet (dye)
_TINTS = np.array([[0.55, 0.95, 1.35], [0.5, 0.8, 1.6], [0.8, 1.25, 0.8], [1.45, 0.8, 1.05]])
_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as OpenCV's fixed-point integers (``_SHIFT`` fractional bits)."""
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


class Defect:
    """Draws one defect on a specimen with its own random stream."""

    def __init__(self, rng: np.random.Generator, spec: Specimen) -> None:
        self.rng = rng
        self.spec = spec
        self.scale = spec.size / 256

    def _point(self, low: float, high: float) -> tuple[float, float]:
        """A random pixel (x, y) whose normalised radius lies in [low, high)."""
        ys, xs = np.nonzero((self.spec.rho >= low) & (self.spec.rho < high))
        i = int(self.rng.integers(len(xs)))
        return float(xs[i]), float(ys[i])

    def _blob(self, centre: tuple[float, float], radius: float, ragged: float) -> np.ndarray:
        """A soft blob (float32 0..1) of about ``radius`` pixels with a lobed, ragged outline."""
        size = self.spec.size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        dx, dy = xs - np.float32(centre[0]), ys - np.float32(centre[1])
        theta = np.arctan2(dy, dx)
        reach = np.ones_like(theta)
        for k in range(2, 7):
            amplitude = ragged * self.rng.uniform(0.3, 1.0) / (k - 1) ** 0.7
            reach += np.float32(amplitude) * np.cos(k * theta + self.rng.uniform(0, 2 * math.pi))
        d = np.sqrt(dx**2 + dy**2) / (radius * np.clip(reach, 0.3, None))
        return np.clip(0.5 + (1.0 - d) * (radius / 1.5), 0.0, 1.0)

    def vaterite(
        self, colour: np.ndarray, shade: np.ndarray, alpha: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replace an irregular region by clear, glassy crystal without growth zones."""
        rng = self.rng
        radius = self.spec.a * rng.uniform(0.1, 0.4)
        region = self._blob(self._point(0.15, 0.85), radius, ragged=0.35) * alpha
        level = float((colour[alpha > 0.5] @ _GRAY).mean()) * rng.uniform(0.75, 1.0)
        glass = _GLASS / float(_GLASS @ _GRAY) * level
        size = self.spec.size
        cells = rng.standard_normal((24, 24)).astype(np.float32)
        facets = cv2.resize(cells, (size, size), interpolation=cv2.INTER_NEAREST)
        facets = cv2.GaussianBlur(facets, (0, 0), 0.7 * self.scale + 0.3)
        glassy = glass[None, None, :] * (1.0 + 0.06 * facets)[..., None]
        m = (rng.uniform(0.7, 1.0) * region)[..., None]
        colour = colour * (1.0 - m) + glassy * m
        sparkle = (rng.random(shade.shape) > 0.997).astype(np.float32)
        sparkle = cv2.GaussianBlur(sparkle, (0, 0), 0.8) * 3.0
        return colour, shade * (1.0 + 0.25 * sparkle * region)

    def stain(self, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Tint an irregular region at the same luminance (gray images cannot show it)."""
        rng = self.rng
        radius = self.spec.a * rng.uniform(0.15, 0.45)
        region = self._blob(self._point(0.1, 0.8), radius, ragged=0.5) * alpha
        tinted = colour * _TINTS[int(rng.integers(len(_TINTS)))].astype(np.float32)
        level = colour @ _GRAY
        tinted *= (level / np.maximum(tinted @ _GRAY, 1e-3))[..., None]
        # no channel above the specimen's brightest: the luminance a capped channel loses
        # goes to the others, so clipping in the photograph cannot show the stain in gray
        cap = float(colour[alpha > 0.5].max())
        for _ in range(3):
            tinted = np.minimum(tinted, cap)
            free = (tinted < cap - 1e-3).astype(np.float32)
            deficit = level - tinted @ _GRAY
            tinted += free * (deficit / np.maximum(free @ _GRAY, 1e-3))[..., None]
        tinted = np.minimum(tinted, cap)
        m = (rng.uniform(0.5, 1.0) * region)[..., None]
        return colour * (1.0 - m) + tinted * m

    def broken(self, alpha: np.ndarray) -> np.ndarray:
        """Break a piece off along a jagged line, or chip a small bite out of the margin."""
        rng, spec = self.rng, self.spec
        if rng.random() < 0.5:
            bite = self._blob(self._point(0.97, 1.03), spec.a * rng.uniform(0.05, 0.14), 0.25)
            return alpha * (1.0 - bite)
        size = spec.size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        psi = rng.uniform(0, 2 * math.pi)
        cx, cy = spec.centre
        along = (xs - cx) * math.cos(psi) + (ys - cy) * math.sin(psi)
        across = -(xs - cx) * math.sin(psi) + (ys - cy) * math.cos(psi)
        cut_at = float(along[alpha > 0.5].max()) * rng.uniform(0.35, 0.8)
        knots = np.cumsum(rng.normal(0, 1.5 * self.scale, 24))
        jag = np.interp(across, np.linspace(-size, size, 24), knots - knots.mean())
        return alpha * (1.0 - np.clip(0.5 + (along - cut_at - jag), 0.0, 1.0))

    def _walk(self, x: float, y: float, heading: float, steps: int, turn: float) -> np.ndarray:
        """A jagged random-walk polyline of ``steps`` two-pixel steps (fixed-point)."""
        points = [(x, y)]
        for _ in range(steps):
            heading += self.rng.normal(0, turn)
            x += 2 * self.scale * math.cos(heading)
            y += 2 * self.scale * math.sin(heading)
            points.append((x, y))
        return _fixed(np.array(points))

    def crack(self, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Draw one to three thin, jagged, dark fracture lines (one or two pixels wide)."""
        rng, spec = self.rng, self.spec
        canvas = np.zeros((spec.size, spec.size), np.uint8)
        for _ in range(int(rng.choice([1, 1, 2, 3]))):
            x, y = self._point(0.9, 1.0) if rng.random() < 0.7 else self._point(0.2, 0.7)
            heading = math.atan2(spec.centre[1] - y, spec.centre[0] - x) + rng.normal(0, 0.5)
            steps = max(4, int(spec.a * rng.uniform(0.25, 1.1) / (2 * self.scale)))
            thickness = max(1, round(self.scale * (1 if rng.random() < 0.6 else 2)))
            line = self._walk(x, y, heading, steps, 0.25)
            cv2.polylines(canvas, [line], False, 255, thickness, cv2.LINE_AA, _SHIFT)
        mask = canvas.astype(np.float32) * (rng.uniform(0.35, 0.85) / 255.0) * alpha
        return colour * (1.0 - mask)[..., None]

    def debris(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Lay dark specks, fibres and air bubbles on (mostly) the specimen."""
        rng, s, size = self.rng, self.scale, self.spec.size
        for _ in range(int(min(6, rng.geometric(0.45)))):
            if rng.random() < 0.85:
                x, y = self._point(0.0, 0.95)
            else:
                x, y = (float(c) for c in rng.uniform(0.1, 0.9, 2) * size)
            canvas = np.zeros((size, size), np.uint8)
            kind = rng.choice(["speck", "speck", "fibre", "bubble"])
            if kind == "speck":
                angles = np.sort(rng.uniform(0, 2 * math.pi, 7))
                radii = rng.uniform(1.5, 5.0) * s * rng.uniform(0.5, 1.2, 7)
                poly = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], 1)
                cv2.fillPoly(canvas, [_fixed(poly)], 255, cv2.LINE_AA, _SHIFT)
                brown = np.array([40.0, 55.0, 70.0]) * rng.uniform(0.4, 1.4)
                image = _paint(image, canvas, brown, rng.uniform(0.75, 1.0))
            elif kind == "fibre":
                steps = int(rng.uniform(6, 20) * s) + 2
                line = self._walk(x, y, rng.uniform(0, 2 * math.pi), steps, 0.3)
                cv2.polylines(canvas, [line], False, 255, max(1, round(s)), cv2.LINE_AA, _SHIFT)
                blue = np.array([110.0, 70.0, 50.0]) * rng.uniform(0.4, 1.2)
                image = _paint(image, canvas, blue, rng.uniform(0.6, 0.9))
            else:
                image = self._bubble(image, x, y, rng.uniform(3.0, 10.0) * s)
        return image

    def _bubble(self, image: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
        """An air bubble: slightly dark inside, a dark rim and a small bright glint."""
        size, width = self.spec.size, max(1, round(self.scale))
        centre, radius = tuple(int(c) for c in _fixed(np.array([x, y]))), round(r * _ONE)
        inside, rim, glint = (np.zeros((size, size), np.uint8) for _ in range(3))
        cv2.circle(inside, centre, radius, 255, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(rim, centre, radius, 255, width, cv2.LINE_AA, _SHIFT)
        spot = tuple(int(c) for c in _fixed(np.array([x - 0.35 * r, y - 0.35 * r])))
        cv2.circle(glint, spot, max(1, round(0.25 * r * _ONE)), 255, -1, cv2.LINE_AA, _SHIFT)
        image = _paint(image, inside, image.mean((0, 1)) * 0.5, 0.25)
        image = _paint(image, rim, np.array([30.0, 30.0, 30.0]), 0.7)
        return _paint(image, glint, np.array([250.0, 250.0, 250.0]), 0.8)

    def blur_sigma(self) -> float:
        """The defocus (Gaussian sigma in pixels) of an out-of-focus photograph."""
        return float(self.rng.uniform(1.6, 4.0) * self.scale)


def _paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float) -> np.ndarray:
    """Paint ``colour`` over ``image`` where ``mask`` (uint8) is set, with ``opacity``."""
    m = cv2.GaussianBlur(mask.astype(np.float32) * (opacity / 255.0), (0, 0), 0.6)[..., None]
    return image * (1.0 - m) + np.asarray(colour, np.float32)[None, None, :] * m


__all__ = ["ANOMALY_TYPES", "COLOUR_ONLY_TYPES", "Defect"]
