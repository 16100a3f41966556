"""Synthetic zebrafish side views with a stable skin pattern per individual (numpy + OpenCV).

Each :class:`Individual` owns a *pattern texture*: dark-stripe density over body coordinates
``(u, v)``, ``u`` running from the snout (0) to the end of the tail fin (1) and ``v`` from the
dorsal (-1) to the ventral (+1) outline. Four or five horizontal dark blue stripes run from
behind the gill cover into the tail fin; what makes one fish differ from another is where
its stripes wave, break, fork and merge, and where it carries spots. The texture is made
once from ``(seed, index)``, so a fish looks the same in every render and
``make_individuals(40, 0)`` are the first 40 of ``make_individuals(200, 0)``.

:func:`render_fish` maps the texture onto a body outline (head, eye, dorsal, anal and forked
tail fins) with one inverse warp per image: bending, posterior foreshortening (a lateral bend
seen from the side), rotation, scale and position vary, then lighting, background, an
occluder (plant leaf, another fish, debris), blur, noise and JPEG. Fish face left (head at
small x), as crops from an orienting detector would. No torch: the daemon's demo uses this.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

TEX_V, TEX_U = 96, 384  # pattern texture rows (v, dorsal -> ventral) and columns (u, snout -> tail)
# Body outline, half-depth in body lengths at u: rounded head, deepest mid-body, thin
# caudal peduncle (u = 0.8), then the tail fin flaring out to its tips.
_PROFILE_U = np.array([0.0, 0.03, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.86, 1.0])
_PROFILE_H = np.array([0.0, 0.035, 0.07, 0.092, 0.1, 0.09, 0.065, 0.038, 0.05, 0.11])
_TAIL_U = 0.8
_BACKGROUNDS = np.array(  # BGR 0..1: tank blue, green water, sand, slate, dark tank
    [[0.55, 0.45, 0.3], [0.4, 0.5, 0.35], [0.55, 0.7, 0.75], [0.45, 0.45, 0.42], [0.2, 0.18, 0.15]]
)


@dataclass(frozen=True, eq=False, slots=True)
class Individual:
    """One zebrafish: a stable name and the appearance every render of it shares."""

    name: str
    index: int
    seed: int
    texture: np.ndarray  # TEX_V x TEX_U float32 dark-stripe density 0..1 (read-only)
    depth: float  # scale of the body half-depth profile
    stripe_bgr: tuple[float, float, float]
    light_bgr: tuple[float, float, float]


def individual_name(index: int, seed: int) -> str:
    """The stable id of individual ``index`` of generator ``seed``, e.g. ``zf-0-0007``."""
    return f"zf-{seed}-{index:04d}"


def make_individual(index: int, seed: int) -> Individual:
    """Individual ``index`` of generator ``seed``; independent of how many others exist."""
    rng = np.random.default_rng([seed, index, 7919])
    texture = _texture(rng)
    texture.setflags(write=False)
    blue = np.array([0.5, 0.24, 0.12]) * rng.uniform(0.8, 1.15, 3)
    gold, silver = np.array([0.42, 0.72, 0.85]), np.array([0.78, 0.8, 0.78])
    light = gold + (silver - gold) * rng.uniform(0.0, 0.8)
    return Individual(
        name=individual_name(index, seed),
        index=index,
        seed=seed,
        texture=texture,
        depth=float(rng.uniform(0.88, 1.12)),
        stripe_bgr=tuple(float(c) for c in blue),  # type: ignore[arg-type]
        light_bgr=tuple(float(c) for c in light),  # type: ignore[arg-type]
    )


def make_individuals(n: int, seed: int = 0) -> list[Individual]:
    """``n`` individuals of generator ``seed``, each with its own stable pattern."""
    if n < 1:
        msg = f"n must be at least 1, got {n}"
        raise ValueError(msg)
    return [make_individual(i, seed) for i in range(n)]


def render_fish(
    individual: Individual, rng: np.random.Generator, *, height: int = 64, width: int = 160
) -> np.ndarray:
    """One side view of ``individual`` as an H x W x 3 uint8 BGR image (head to the left)."""
    return render_fish_with_mask(individual, rng, height=height, width=width)[0]


def render_fish_with_mask(
    individual: Individual, rng: np.random.Generator, *, height: int = 64, width: int = 160
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_fish` plus the visible-skin mask (H x W bool: body, not occluded)."""
    if height < 16 or width < 16:
        msg = f"render size must be at least 16 x 16, got {height} x {width}"
        raise ValueError(msg)
    image = _background(rng, height, width)
    premultiplied, alpha, skin = _fish_layer(individual, rng, height, width)
    image = image * (1.0 - alpha[..., None]) + premultiplied
    image, skin = _occlude(image, skin, rng)
    image = _lighting(image, rng)
    if rng.random() < 0.4:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.9))
    image += rng.normal(0.0, rng.uniform(0.003, 0.03), image.shape).astype(np.float32)
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(45, 92))
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out, skin


# --- the individual's pattern ------------------------------------------------------------


def _smooth(rng: np.random.Generator, u: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random function of u: three sinusoids with random phases."""
    out = np.zeros_like(u)
    for f in (1.0, 2.3, 4.1):
        out += rng.normal(0, amplitude / f) * np.sin(2 * math.pi * f * u + rng.uniform(0, 6.3))
    return out


def _window(u: np.ndarray, start: float, end: float, soft: float) -> np.ndarray:
    """1 inside [start, end] with soft edges of width ``soft``, 0 outside."""
    return np.clip((u - start) / soft + 0.5, 0, 1) * np.clip((end - u) / soft + 0.5, 0, 1)


def _band(v: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """A stripe: 1 within ``half`` of ``centre`` (in v), with a soft edge."""
    return np.clip((half - np.abs(v - centre)) / 0.035 + 0.5, 0, 1)


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Dark-stripe density over (v, u): stripes that wave, break, fork and merge; spots."""
    u = np.linspace(0, 1, TEX_U)[None, :]
    v = np.linspace(-1, 1, TEX_V)[:, None]
    k = int(rng.integers(4, 6))
    centres = np.linspace(-0.62, 0.74, k) + rng.normal(0, 0.06, k)
    spacing = 1.36 / (k - 1)
    density = np.zeros((TEX_V, TEX_U))
    lines: list[np.ndarray] = []
    for j in range(k):
        centre = centres[j] + _smooth(rng, u, 0.06)
        half = spacing * 0.27 * (1 + _smooth(rng, u, 0.1))
        start, end = rng.uniform(0.2, 0.38), rng.uniform(0.85, 0.995)
        band = _band(v, centre, half)
        if rng.random() < 0.5:  # fork: the stripe splits into two thinner branches
            f0 = rng.uniform(start + 0.05, 0.75)
            f1 = f0 + rng.uniform(0.1, 0.28)
            ramp = np.clip((u - f0) / 0.04, 0, 1) * np.clip((f1 - u) / 0.04 + 1, 0, 1)
            if rng.random() < 0.5:  # the branches stay apart to the end of the fork
                ramp = np.clip((u - f0) / 0.04, 0, 1) * _window(u, f0, f1, 0.01)
            sep = ramp * spacing * 0.38
            branches = np.maximum(
                _band(v, centre - sep, half * (1 - 0.45 * ramp)),
                _band(v, centre + sep, half * (1 - 0.45 * ramp)),
            )
            band = np.where(ramp > 0, branches, band)
        band = band * _window(u, start, end, 0.02)
        for _ in range(int(rng.poisson(1.0))):  # breaks
            b0 = rng.uniform(start + 0.02, 0.88)
            band = band * (1 - _window(u, b0, b0 + rng.uniform(0.04, 0.12), 0.012))
        density = np.maximum(density, band)
        lines.append(centre[0])
    for _ in range(int(rng.poisson(1.8))):  # bridges: a stripe merges into its neighbour
        j = int(rng.integers(0, k - 1))
        c = int(rng.uniform(0.3, 0.85) * (TEX_U - 1))
        c2 = c + int(rng.integers(-25, 26))
        rows = [(lines[j][c] + 1) / 2 * (TEX_V - 1), (lines[j + 1][c2] + 1) / 2 * (TEX_V - 1)]
        thick = int(rng.integers(6, 13))
        cv2.line(density, (c, round(rows[0])), (c2, round(rows[1])), 1.0, thick, cv2.LINE_AA)
    for _ in range(int(rng.poisson(3.0))):  # dark spots between the stripes
        j = int(rng.integers(0, k - 1))
        c = int(rng.uniform(0.25, 0.9) * (TEX_U - 1))
        r = ((lines[j][c] + lines[j + 1][c]) / 2 + 1) / 2 * (TEX_V - 1)
        axes = (int(rng.integers(6, 15)), int(rng.integers(4, 9)))
        cv2.ellipse(density, (c, round(r)), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    for _ in range(int(rng.poisson(2.0))):  # light spots inside a stripe
        j = int(rng.integers(0, k))
        c = int(rng.uniform(0.3, 0.85) * (TEX_U - 1))
        r = (lines[j][c] + 1) / 2 * (TEX_V - 1)
        axes = (int(rng.integers(6, 13)), int(rng.integers(3, 6)))
        cv2.ellipse(density, (c, round(r)), axes, 0, 0, 360, 0.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(density.astype(np.float32), (0, 0), 0.8)


# --- one render -------------------------------------------------------------------------


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Water or tank wall: a tinted base, a gradient, soft blobs, sometimes plants behind."""
    base = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))] * rng.uniform(0.8, 1.15, 3)
    noise = rng.normal(0, 0.08, (4, 8, 1)) + rng.normal(0, 0.025, (4, 8, 3))
    blobs = cv2.resize(noise.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    ys, xs = _grid(h, w)
    grad = (rng.normal(0, 0.15) / w) * xs + (rng.normal(0, 0.15) / w) * ys
    image = np.clip(base.astype(np.float32) + blobs + grad[..., None], 0, 1)
    for _ in range(int(rng.poisson(0.8))):
        _plant(image, rng, blur=1.0)
    return image


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel row and column coordinates (float32, read-only), cached per size."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys.setflags(write=False)
    xs.setflags(write=False)
    return ys, xs


def _plant(image: np.ndarray, rng: np.random.Generator, *, blur: float) -> np.ndarray:
    """Draw a curved leaf from the top or bottom edge into ``image``; return its mask."""
    h, w = image.shape[:2]
    x = rng.uniform(0, w)
    ys = np.linspace(0, h, 6) if rng.random() < 0.5 else np.linspace(h, 0, 6)
    xs = x + np.cumsum(rng.normal(0, w * 0.03, 6))
    n = int(rng.integers(3, 7))
    pts = np.round(np.stack([xs[:n], ys[:n]], 1)).astype(np.int32)
    mask = np.zeros((h, w), np.float32)
    thick = max(2, int(h * rng.uniform(0.06, 0.2)))
    cv2.polylines(mask, [pts], False, 1.0, thick, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), blur)
    green = np.array([0.2, 0.5, 0.3]) * rng.uniform(0.6, 1.3, 3)
    image[:] = image * (1 - mask[..., None]) + green.astype(np.float32) * mask[..., None]
    return mask


def _fish_layer(
    ind: Individual, rng: np.random.Generator, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fish's premultiplied colour (h x w x 3), opacity and skin mask for one pose."""
    fore = rng.uniform(0.8, 1.0)  # posterior foreshortening (lateral bend)
    extent = 0.45 + 0.55 * fore
    length = w * rng.uniform(0.86, 0.96) / extent  # a detector's crop: snout to tail tip
    angle = math.radians(float(np.clip(rng.normal(0, 3), -8, 8)))
    bend = rng.normal(0, 0.05), rng.normal(0, 0.08)
    cx = w / 2 + rng.normal(0, 0.015) * w
    cy = h / 2 + rng.normal(0, 0.04) * h
    ys, xs = _grid(h, w)
    cos, sin = math.cos(angle) / length, math.sin(angle) / length
    ox = (xs - cx) * cos + (ys - cy) * sin + extent / 2
    oy = (ys - cy) * cos - (xs - cx) * sin
    bx = np.where(ox < 0.45, ox, 0.45 + (ox - 0.45) / fore)
    by = oy - (bend[0] * (bx - 0.4) ** 2 + bend[1] * np.maximum(bx - 0.6, 0) ** 2)
    half = np.interp(bx, _PROFILE_U, _PROFILE_H).astype(np.float32) * ind.depth
    half = np.where(by < 0, half, half * 1.08)  # the belly is a little deeper than the back
    v = by / np.maximum(half, 1e-4)
    notch = np.where(bx > _TAIL_U, 0.1 * (1 - np.minimum(np.abs(v), 1)) ** 1.5, 0)
    inside_u = np.clip(bx * length + 0.5, 0, 1) * np.clip((1 - notch - bx) * length + 0.5, 0, 1)
    body = np.clip((half - np.abs(by)) * length + 0.5, 0, 1) * inside_u
    # Blur the texture to the render scale so fine pattern does not alias.
    per_px_u = TEX_U / length
    per_px_v = TEX_V / (2 * _PROFILE_H.max() * ind.depth * length)
    texture = cv2.GaussianBlur(ind.texture, (0, 0), 0.45 * per_px_u, sigmaY=0.45 * per_px_v)
    dens = cv2.remap(
        texture,
        np.clip(bx, 0, 1) * np.float32(TEX_U - 1),
        (np.clip(v, -1, 1) + 1) * np.float32((TEX_V - 1) / 2),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )[..., None]
    light = np.array(ind.light_bgr, np.float32)
    belly = np.array([0.85, 0.86, 0.84], np.float32)
    base = light + (belly - light) * np.clip((v - 0.55) / 0.45, 0, 1)[..., None]
    colour = base * (1 - dens) + np.array(ind.stripe_bgr, np.float32) * dens
    back = np.clip((-v - 0.7) / 0.3, 0, 1) * (bx < _TAIL_U)
    shade = (0.7 + 0.3 * np.sqrt(np.clip(1 - v * v, 0, 1)) - 0.1 * np.clip(v, -1, 1)) * (
        1 - 0.45 * back
    )
    colour = colour * shade[..., None]
    alpha = body * np.where(bx > _TAIL_U + 0.02, 0.8, 1.0).astype(np.float32)
    _eye(colour, bx, by, ind.depth)
    fins = 0.55 * _fins(bx, by, half, length) * (1 - alpha)
    premultiplied = colour * alpha[..., None] + np.float32([0.55, 0.7, 0.75]) * fins[..., None]
    skin = (body > 0.5) & (bx > 0.18)
    return premultiplied.astype(np.float32), (alpha + fins).astype(np.float32), skin


def _fins(bx: np.ndarray, by: np.ndarray, half: np.ndarray, length: float) -> np.ndarray:
    """Opacity of the dorsal and anal fins (outside the body outline, striped anal fin)."""
    dorsal = np.clip((0.55 - bx) / 0.12, 0, 1) * _window(bx, 0.42, 0.6, 0.01)
    anal = np.clip((0.73 - bx) / 0.2, 0, 1) * _window(bx, 0.5, 0.74, 0.01)
    out_top = np.clip(-by - half, 0, None)
    out_bottom = np.clip(by - half, 0, None)
    fin = (out_top > 0) * np.clip((0.07 * dorsal - out_top) * length, 0, 1)
    stripes = 0.6 + 0.4 * np.sin(out_bottom * 260.0)
    fin = fin + (out_bottom > 0) * np.clip((0.075 * anal - out_bottom) * length, 0, 1) * stripes
    return np.clip(fin, 0, 1).astype(np.float32)


def _eye(colour: np.ndarray, bx: np.ndarray, by: np.ndarray, depth: float) -> None:
    """Draw the eye (gold iris, black pupil) in place."""
    d = np.hypot(bx - 0.065, by + 0.012 * depth)
    iris = d < 0.026
    colour[iris] = (0.45, 0.65, 0.7)
    colour[d < 0.016] = (0.05, 0.05, 0.06)


def _occlude(
    image: np.ndarray, skin: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sometimes hide part of the fish: a plant leaf, another fish's body or debris."""
    roll = rng.random()
    if roll > 0.35:
        return image, skin
    h, w = image.shape[:2]
    if roll < 0.15:
        mask = _plant(image, rng, blur=1.0)
    else:
        mask = np.zeros((h, w), np.float32)
        centre = (int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0, 1) * h))
        axes = (int(w * rng.uniform(0.08, 0.3)), int(h * rng.uniform(0.12, 0.35)))
        cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
        if roll < 0.27:  # another fish's body: stripes across it
            stripes = 0.5 + 0.5 * np.sin(np.arange(h)[:, None] * rng.uniform(0.3, 0.6))
            tint = np.array([0.7, 0.75, 0.75]) - stripes[..., None] * np.array([0.3, 0.5, 0.6])
        else:  # debris: dark and blurred
            tint = np.full((h, w, 3), rng.uniform(0.05, 0.35)) * rng.uniform(0.7, 1.2, 3)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.5)
        image = image * (1 - mask[..., None]) + tint.astype(np.float32) * mask[..., None]
    return image, skin & (mask < 0.5)


def _lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, colour cast and a light gradient over the whole scene."""
    h, w = image.shape[:2]
    ys, xs = _grid(h, w)
    ramp = 1 + (rng.normal(0, 0.15) / w) * (xs - w / 2) + (rng.normal(0, 0.2) / w) * (ys - h / 4)
    cast = (rng.uniform(0.9, 1.1, 3) * rng.uniform(0.6, 1.3)).astype(np.float32)
    return np.clip(image * ramp[..., None] * cast, 0, 1)


__all__ = [
    "Individual",
    "individual_name",
    "make_individual",
    "make_individuals",
    "render_fish",
    "render_fish_with_mask",
]
