"""How each synthetic taxon is drawn: an opacity map (0..255) built from OpenCV primitives.

Every renderer returns a :class:`Pen` whose canvas holds one object, drawn in its own
rotated frame (x = body axis) with anti-aliased, sub-pixel primitives: translucent bodies,
denser organs and appendages one or two pixels wide. :mod:`.synthetic` turns the canvas into
an image (crop, breakage, defocus, background, noise). numpy + OpenCV only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np

_SHIFT = 4  # fixed-point bits for sub-pixel OpenCV drawing
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA


class Pen:
    """Draws opacity (0..255) into a square canvas in object coordinates (x = body axis)."""

    def __init__(self, radius: float, rng: np.random.Generator) -> None:
        side = math.ceil(2 * radius) + 8
        self.canvas = np.zeros((side, side), np.uint8)
        self.glint: np.ndarray | None = None  # optional brighter-than-background layer
        self.angle = float(rng.uniform(0.0, 360.0))
        a = math.radians(self.angle)
        self._cos, self._sin, self._half = math.cos(a), math.sin(a), side / 2.0
        self._rot = np.array([[self._cos, self._sin], [-self._sin, self._cos]])

    def _fix(self, pts: np.ndarray) -> np.ndarray:
        xy = np.asarray(pts, np.float64).reshape(-1, 2) @ self._rot + self._half
        return np.round(xy * _ONE).astype(np.int32)

    def poly(self, pts: np.ndarray, value: float, target: np.ndarray | None = None) -> None:
        canvas = self.canvas if target is None else target
        cv2.fillPoly(canvas, [self._fix(pts)], int(value), _AA, _SHIFT)

    def line(self, pts: np.ndarray, value: float, thickness: int = 1) -> None:
        self.lines([pts], value, thickness)

    def lines(self, polylines: list[np.ndarray], value: float, thickness: int = 1) -> None:
        fixed = [self._fix(p) for p in polylines]
        cv2.polylines(self.canvas, fixed, False, int(value), thickness, _AA, _SHIFT)

    def ellipse(
        self,
        centre: tuple[float, float],
        axes: tuple[float, float],
        value: float,
        angle: float = 0.0,
        thickness: int = -1,
        target: np.ndarray | None = None,
    ) -> None:
        x, y = float(centre[0]), float(centre[1])
        c = (
            round((self._half + x * self._cos - y * self._sin) * _ONE),
            round((self._half + x * self._sin + y * self._cos) * _ONE),
        )
        ax = (max(1, int(axes[0] * _ONE)), max(1, int(axes[1] * _ONE)))
        canvas = self.canvas if target is None else target
        cv2.ellipse(canvas, c, ax, self.angle + angle, 0, 360, int(value), thickness, _AA, _SHIFT)

    def blobs(
        self, centres: np.ndarray, axes: np.ndarray, values: np.ndarray, angles: np.ndarray
    ) -> None:
        """Many filled ellipses at once (rows of centres, axes, values, angles)."""
        c = self._fix(centres).tolist()
        ax = np.maximum(1, (axes * _ONE).astype(np.int64)).tolist()
        for ci, ai, v, a in zip(c, ax, values.tolist(), angles.tolist(), strict=True):
            cv2.ellipse(self.canvas, ci, ai, self.angle + a, 0, 360, int(v), -1, _AA, _SHIFT)

    def mottle(self, rng: np.random.Generator, low: float, cells: int = 6) -> None:
        """Multiply the canvas by a smooth random texture between ``low`` and 1."""
        side = self.canvas.shape[0]
        tex = cv2.resize(
            rng.uniform(low, 1.0, (cells, cells)).astype(np.float32),
            (side, side),
            interpolation=cv2.INTER_CUBIC,
        )
        self.canvas = np.clip(self.canvas * tex, 0, 255).astype(np.uint8)


def _curve(
    p0: tuple[float, float], p1: tuple[float, float], bend: float, n: int = 16
) -> np.ndarray:
    """Quadratic Bezier from p0 to p1 bowed sideways by ``bend`` (fraction of its length)."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    ctrl = (a + b) / 2 + bend * np.array([a[1] - b[1], b[0] - a[0]])
    w = _bezier_weights(n)
    return w[:, :1] * a + w[:, 1:2] * ctrl + w[:, 2:] * b


@functools.cache
def _bezier_weights(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    return np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2], 1)


def _strip(xs: np.ndarray, ys: np.ndarray, half_widths: np.ndarray) -> np.ndarray:
    """Polygon of a band of varying width around the centre line (xs, ys)."""
    tangent = np.gradient(np.stack([xs, ys], 1), axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    centre = np.stack([xs, ys], 1)
    return np.concatenate(
        [centre + normal * half_widths[:, None], (centre - normal * half_widths[:, None])[::-1]]
    )


def _copepod(rng: np.random.Generator) -> Pen:
    length = rng.uniform(45, 150)
    pen = Pen(length * 0.95, rng)
    w, v = length * rng.uniform(0.11, 0.16), rng.uniform(130, 210)
    pen.ellipse((0, 0), (length * 0.3, w), v)  # prosome
    pen.ellipse((length * 0.02, 0), (length * 0.2, w * 0.35), min(255, v + 40))  # gut
    for x in np.linspace(-0.18, 0.12, int(rng.integers(3, 6))) * length:  # segment lines
        half = w * math.sqrt(max(0.05, 1 - (x / (length * 0.3)) ** 2))
        pen.line(np.array([(x, -half), (x + 2, 0), (x, half)]), min(255, v + 50))
    x = -length * 0.28
    for k in range(int(rng.integers(3, 5))):  # urosome segments
        seg = length * 0.07
        pen.ellipse((x - seg, 0), (seg * 1.1, w * (0.4 - 0.05 * k)), v)
        x -= 2 * seg
    for side in (-1, 1):  # per side: caudal seta, antenna (sometimes broken), legs
        pen.line(
            np.array([(x, 0), (x - length * 0.2, side * length * rng.uniform(0.03, 0.1))]), v * 0.7
        )
        head = (length * 0.26, side * w * 0.5)
        reach = (
            length
            * rng.uniform(0.5, 0.95)
            * (rng.uniform(0.2, 0.6) if rng.random() < 0.15 else 1.0)
        )
        sweep = rng.uniform(-0.6, 0.1)
        tip = (head[0] + reach * sweep, side * (w * 0.5 + reach * math.sqrt(1 - sweep**2)))
        pen.line(_curve(head, tip, side * rng.uniform(-0.15, 0.15)), rng.uniform(150, 230))
        for leg in np.linspace(-0.1, 0.12, 4) * length:  # swimming legs
            pen.line(
                np.array([(leg, side * w * 0.6), (leg - 4, side * (w + length * 0.06))]), v * 0.8
            )
    pen.ellipse((length * 0.27, 0), (2.2, 2.2), 250)  # naupliar eye
    return pen


def _diatom_chain(rng: np.random.Generator) -> Pen:
    n, cw, ch = int(rng.integers(3, 11)), rng.uniform(8, 22), rng.uniform(7, 20)
    gap = rng.uniform(1, 3.5)
    total = n * (cw + gap)
    setae = rng.random() < 0.4
    pen = Pen(total / 2 + (50 if setae else 10), rng)
    centre = _curve((-total / 2, 0), (total / 2, 0), rng.uniform(-0.25, 0.25), n)
    oval, fill = rng.random() < 0.5, rng.uniform(50, 110)
    for i, (cx, cy) in enumerate(centre):
        if oval:
            pen.ellipse((cx, cy), (cw / 2, ch / 2), fill)
            pen.ellipse((cx, cy), (cw / 2, ch / 2), 210, thickness=1)
        else:
            box = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) * (cw / 2, ch / 2) + (cx, cy)
            pen.poly(box, fill)
            pen.line(np.vstack([box, box[:1]]), 210, thickness=int(rng.integers(1, 3)))
        for _ in range(int(rng.integers(1, 4))):  # chloroplasts
            pen.ellipse(
                (cx + rng.uniform(-cw, cw) / 4, cy + rng.uniform(-ch, ch) / 4),
                (rng.uniform(1.5, 3.5), rng.uniform(1.5, 3)),
                190,
            )
        if setae and i < n - 1:
            jx = cx + (cw + gap) / 2
            for side in (-1, 1):
                ang = math.radians(rng.uniform(50, 85))
                reach = rng.uniform(20, 45)
                tip = (
                    jx + reach * math.cos(ang) * rng.choice([-1, 1]),
                    cy + side * reach * math.sin(ang),
                )
                pen.line(_curve((jx, cy), tip, rng.uniform(-0.2, 0.2), 8), 150)
    return pen


def _noctiluca(rng: np.random.Generator) -> Pen:
    r = rng.uniform(35, 115)
    pen = Pen(r * 1.35, rng)
    pen.ellipse((0, 0), (r, r * rng.uniform(0.88, 1.0)), rng.uniform(25, 55))
    pen.ellipse((0, 0), (r, r * 0.94), rng.uniform(100, 150), thickness=2)
    nucleus = (r * rng.uniform(0.45, 0.65), 0.0)
    for a in rng.uniform(0, 2 * math.pi, int(rng.integers(5, 12))):  # cytoplasmic strands
        tip = (r * 0.9 * math.cos(a), r * 0.9 * math.sin(a))
        pen.line(_curve(nucleus, tip, rng.uniform(-0.2, 0.2), 8), rng.uniform(60, 95))
    pen.ellipse(nucleus, (r * 0.16, r * 0.12), 150)
    for _ in range(int(rng.integers(0, 6))):  # food particles
        d, a = r * rng.uniform(0, 0.8), rng.uniform(0, 2 * math.pi)
        pen.ellipse((d * math.cos(a), d * math.sin(a)), (2.5, 2), rng.uniform(120, 200))
    tentacle = _curve((r * 0.95, 0), (r * rng.uniform(1.2, 1.33), r * 0.15), 0.3, 8)
    pen.line(tentacle, 150, thickness=int(rng.integers(3, 6)))
    return pen


def _chaetognath(rng: np.random.Generator) -> Pen:
    length = rng.uniform(110, 280)
    pen = Pen(length * 0.55, rng)
    xs = np.linspace(-length / 2, length / 2, 24)
    ys = rng.uniform(-0.12, 0.12) * length * (1 - (2 * xs / length) ** 2)
    t = (xs + length / 2) / length  # 0 = tail, 1 = head
    width = length * rng.uniform(0.025, 0.04)
    profile = width * (0.25 + 0.75 * np.sin(np.pi * np.clip(t * 1.05, 0, 1)) ** 0.5)
    profile[-3:] = width * 0.9  # rounded head
    fins = [(0.12, 0.3), (0.38, 0.52)]
    for lo, hi in fins:  # lateral fins, faint
        sel = (t > lo) & (t < hi)
        fin = profile.copy()
        fin[sel] += width * 1.6 * np.sin(np.pi * (t[sel] - lo) / (hi - lo))
        pen.poly(_strip(xs[sel], ys[sel], fin[sel]), rng.uniform(35, 60))
    x_end, y_end, fan = xs[0], ys[0], width * 1.4
    tail_fin = np.array(
        [(x_end + 2, y_end - fan), (x_end - 2 * width, y_end), (x_end + 2, y_end + fan)]
    )
    pen.poly(tail_fin, 45)
    pen.poly(_strip(xs, ys, profile), rng.uniform(75, 130))
    pen.line(np.stack([xs[3:-3], ys[3:-3]], 1), rng.uniform(140, 190))  # gut
    hx, hy = xs[-1], ys[-1]
    for side in (-1, 1):
        for k in range(int(rng.integers(3, 6))):  # grasping hooks
            a = side * math.radians(10 + 12 * k)
            tip = (hx + width * 2.2 * math.cos(a), hy + width * 2.2 * math.sin(a))
            pen.line(_curve((hx - 2, hy + side * width * 0.6), tip, side * 0.3, 6), 200)
        pen.ellipse((hx - width * 0.8, hy + side * width * 0.45), (1.3, 1.3), 240)  # eyes
    return pen


def _appendicularian(rng: np.random.Generator) -> Pen:
    trunk = rng.uniform(22, 60)
    tail = trunk * rng.uniform(2.5, 4.0)
    pen = Pen(trunk * 0.6 + tail * 0.55, rng)
    x0 = -(trunk + tail) / 2 + tail
    xs = np.linspace(x0 - tail, x0, 28)
    ys = (
        trunk
        * rng.uniform(0.1, 0.3)
        * np.sin(rng.uniform(1.5, 3.5) * np.pi * (xs - x0) / tail + rng.uniform(0, 2 * np.pi))
    )
    half = trunk * 0.12 * (0.3 + 0.7 * np.linspace(0, 1, xs.size))
    pen.poly(_strip(xs, ys, half), rng.uniform(70, 120))
    pen.line(np.stack([xs, ys], 1), rng.uniform(130, 180))  # notochord
    pen.ellipse(
        (x0 + trunk * 0.45, ys[-1]),
        (trunk * 0.5, trunk * 0.32),
        rng.uniform(130, 190),
        angle=rng.uniform(-25, 25),
    )
    pen.ellipse((x0 + trunk * 0.35, ys[-1]), (trunk * 0.22, trunk * 0.15), 230)  # gonad
    return pen


def _radiolarian(rng: np.random.Generator) -> Pen:
    r = rng.uniform(10, 40)
    spine = r * rng.uniform(1.0, 2.4)
    pen = Pen(r + spine, rng)
    pen.ellipse((0, 0), (r * rng.uniform(1.3, 1.7),) * 2, rng.uniform(30, 60))  # halo
    n = int(rng.integers(14, 40))
    for a in np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(0, 0.3, n):
        reach = r + spine * rng.uniform(0.7, 1.0)
        pen.line(
            np.array([(0, 0), (reach * math.cos(a), reach * math.sin(a))]),
            rng.uniform(140, 220),
            thickness=int(rng.integers(1, 3)) if n < 20 else 1,
        )
    pen.ellipse((0, 0), (r, r), rng.uniform(160, 230))
    pen.ellipse((0, 0), (r * 0.55, r * 0.55), 250, thickness=2)
    return pen


def _marine_snow(rng: np.random.Generator) -> Pen:
    size = rng.uniform(20, 110)
    pen = Pen(size * 1.3, rng)
    k, n = int(rng.integers(1, 4)), int(rng.integers(30, 90))
    centres = rng.normal(0, size * 0.3, (k, 2))
    where = centres[rng.integers(0, k, n)] + rng.normal(0, size * 0.3, (n, 2))
    radii = rng.uniform(1.5, size * 0.18 + 2, n)
    axes = np.stack([radii, radii * rng.uniform(0.4, 1.0, n)], 1)
    pen.blobs(where, axes, rng.uniform(25, 95, n), rng.uniform(0, 180, n))
    pen.canvas = cv2.GaussianBlur(pen.canvas, (0, 0), 1.0 + size * 0.02)  # fluffy edges
    pen.mottle(rng, 0.4, cells=int(rng.integers(4, 9)))
    m = int(rng.integers(3, 15))  # embedded specks
    specks = centres[rng.integers(0, k, m)] + rng.normal(0, size * 0.3, (m, 2))
    pen.blobs(
        specks,
        np.repeat(rng.uniform(0.8, 2.5, (m, 1)), 2, 1),
        rng.uniform(150, 230, m),
        np.zeros(m),
    )
    strands = [
        _curve(tuple(p), tuple(p + rng.normal(0, size * 0.3, 2)), 0.3, 6)
        for p in where[: int(rng.integers(0, 5))]
    ]
    if strands:
        pen.lines(strands, rng.uniform(60, 110))
    return pen


def _detritus(rng: np.random.Generator) -> Pen:
    size = rng.uniform(12, 75)
    pen = Pen(size * 1.05, rng)
    n = int(rng.integers(6, 14))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = size * rng.uniform(0.45, 1.0, n)
    pts = np.stack([radii * np.cos(angles), radii * np.sin(angles) * rng.uniform(0.3, 1)], 1)
    pen.poly(pts, rng.uniform(190, 250))
    m = int(rng.integers(0, 5))  # lighter pits and cracks
    pits = pts[rng.integers(0, n, m)] * rng.uniform(0.1, 0.6, (m, 1))
    pen.blobs(
        pits,
        np.repeat(rng.uniform(1, size * 0.15 + 1, (m, 1)), 2, 1),
        rng.uniform(110, 170, m),
        np.zeros(m),
    )
    pen.mottle(rng, rng.uniform(0.55, 0.9))
    return pen


def _bubble(rng: np.random.Generator) -> Pen:
    r = rng.uniform(8, 60)
    pen = Pen(r * 1.1, rng)
    pen.ellipse(
        (0, 0),
        (r * 0.82, r * 0.82),
        rng.uniform(200, 250),
        thickness=max(2, int(r * rng.uniform(0.2, 0.35))),
    )
    pen.glint = np.zeros_like(pen.canvas)
    off = r * rng.uniform(-0.15, 0.15, 2)
    pen.ellipse(tuple(off), (r * 0.35, r * 0.35), rng.uniform(150, 255), target=pen.glint)
    return pen


def _fiber(rng: np.random.Generator) -> Pen:
    length = rng.uniform(50, 270)
    pen = Pen(length / 2 + 4, rng)
    a, b = (-length / 2, 0.0), (length / 2, 0.0)
    mid = (rng.uniform(-0.2, 0.2) * length, rng.uniform(-0.2, 0.2) * length)
    pts = np.vstack(
        [_curve(a, mid, rng.uniform(-0.3, 0.3)), _curve(mid, b, rng.uniform(-0.3, 0.3))]
    )
    pen.line(pts, rng.uniform(150, 240), thickness=int(rng.integers(1, 4)))
    if rng.random() < 0.3:  # frayed end
        pen.line(_curve(b, (b[0] - 15, 8.0), 0.2, 6), 120)
    return pen


#: taxon name -> renderer; the names are :data:`seawatch.models.plankton.synthetic.TAXA`.
RENDERERS: dict[str, Callable[[np.random.Generator], Pen]] = {
    "appendicularian": _appendicularian,
    "bubble": _bubble,
    "chaetognath": _chaetognath,
    "copepod": _copepod,
    "detritus": _detritus,
    "diatom_chain": _diatom_chain,
    "fiber": _fiber,
    "marine_snow": _marine_snow,
    "noctiluca": _noctiluca,
    "radiolarian": _radiolarian,
}
#: taxa never drawn broken (a broken bubble or fibre is still a bubble or fibre).
UNBREAKABLE = frozenset({"bubble", "fiber"})


__all__ = ["RENDERERS", "UNBREAKABLE", "Pen"]
