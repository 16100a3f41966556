"""Hard synthetic full frames with every instance mask known (numpy + OpenCV only).

What makes real full frames hard for a global threshold, on purpose and in measured doses:

- **touching and overlapping organisms**: a share of the objects is placed against one
  already in the frame, touching it or overlapping it by up to a third of the smaller one
  (bright-field transmissions multiply where they overlap, as real translucent bodies do);
- **marine-snow fragments**: flocks drawn faint, so only their denser blobs clear a threshold
  and the flock breaks into pieces; its true mask is the whole flock (its blobs closed);
- **uneven illumination**: a steep gradient, strong vignetting and a broad shadow;
- **out-of-focus objects**: extra Gaussian defocus on a share of the objects; the true mask
  is the object in focus, so a blurred halo is not part of it;
- **debris**: specks and fibre scraps too small to be objects (ESD under 6 px), which are
  background in the truth.

The objects come from the plankton renderers (:mod:`seawatch.models.plankton._taxa`) at the
daemon's full-frame scale (the largest side up to :data:`REFERENCE_CAP` px, as in a
1280 x 960 frame), whatever the size of the frame drawn, so small training tiles and full
daemon frames hold objects of the same sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.models.plankton.synthetic import (
    TAXA,
    object_opacity,
    sample_taxa,
    sensor_noise,
    uneven_background,
)

REFERENCE_CAP = 160  # the largest object side of a 1280 x 960 daemon frame, px
MASK_LEVEL = 0.08  # opacity at which an object's true mask begins (as the plankton truth boxes)
MIN_ESD_PX = 6.0  # the daemon's default minimum ESD: smaller true instances are not counted


@dataclass(frozen=True)
class HardFrame:
    """A rendered frame and its truth.

    ``labels``: int32, 0 = background, ``i + 1`` = instance ``i`` (where two overlap, the
    one drawn later, in front). ``taxa[i]``, ``touching[i]`` (touches or overlaps another),
    ``defocused[i]`` describe instance ``i``.
    """

    image: np.ndarray
    labels: np.ndarray
    taxa: tuple[str, ...]
    touching: tuple[bool, ...]
    defocused: tuple[bool, ...]

    @property
    def n_instances(self) -> int:
        return len(self.taxa)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Tight (x, y, w, h) box of each instance's visible mask ((0, 0, 0, 0) if hidden)."""
        out = []
        for i in range(self.n_instances):
            ys, xs = np.nonzero(self.labels == i + 1)
            if len(xs) == 0:
                out.append((0, 0, 0, 0))
                continue
            x0, y0 = int(xs.min()), int(ys.min())
            out.append((x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1))
        return out


@dataclass(frozen=True)
class Hardness:
    """How hard a frame is; the defaults are the issue's "hard the way real frames are"."""

    touching: float = 0.4  # share of objects placed against another
    max_overlap: float = 0.3  # of the smaller object's area
    defocus: float = 0.25  # share of objects with extra defocus
    defocus_sigma: tuple[float, float] = (1.5, 4.0)
    snow_contrast: tuple[float, float] = (0.4, 0.75)  # marine snow opacity scale
    faint: float = 0.25  # share of other objects drawn at low contrast
    debris: tuple[int, int] = (20, 80)  # specks and scraps per megapixel x 100
    illumination: float = 1.0  # 0: the plankton generator's field; 1: steep and shadowed

    def __post_init__(self) -> None:
        for name in ("touching", "max_overlap", "defocus", "faint"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"Hardness.{name} must be in [0, 1], got {value}"
                raise ValueError(msg)


EASY = Hardness(
    touching=0.0, defocus=0.0, snow_contrast=(1.0, 1.0), faint=0.0, debris=(0, 1), illumination=0.0
)


def _fill(mask: np.ndarray) -> np.ndarray:
    """The mask with every hole inside its outlines filled (uint8 0/1)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out


def _true_mask(opacity: np.ndarray, taxon: str) -> np.ndarray:
    """An object's true mask from its in-focus opacity (times its contrast: what can be
    seen of a faint object): above MASK_LEVEL, closed (flocks of
    marine snow by a disc of a tenth of their size, so the flock is one object), filled."""
    mask = (opacity > MASK_LEVEL).astype(np.uint8)
    side = max(mask.shape)
    k = max(3, round(0.1 * side)) if taxon == "marine_snow" else 3
    k += 1 - k % 2
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    padded = cv2.copyMakeBorder(mask, k, k, k, k, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disc)[k:-k, k:-k]
    return _fill(closed)


def _illumination(shape: tuple[int, int], rng: np.random.Generator, amount: float) -> np.ndarray:
    """Multiplicative light field (float32, ~1): vignetting, a gradient and a broad shadow."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    r2 = ((xx - cx) / max(w, h)) ** 2 + ((yy - cy) / max(w, h)) ** 2
    light = 1.0 - amount * rng.uniform(0.3, 0.8) * r2
    a = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(a) + yy * math.sin(a)) / max(w, h)
    light *= 1.0 + amount * rng.uniform(0.1, 0.3) * (ramp - ramp.mean())
    if amount > 0 and rng.random() < 0.7:
        sx, sy = rng.uniform(0, w), rng.uniform(0, h)
        radius = rng.uniform(0.2, 0.5) * max(w, h)
        shadow = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * radius * radius))
        light *= 1.0 - amount * rng.uniform(0.1, 0.3) * shadow
    return light.astype(np.float32)


def _debris(shape: tuple[int, int], rng: np.random.Generator, hard: Hardness) -> np.ndarray:
    """Opacity of specks and fibre scraps, each under MIN_ESD_PX (float32 0..1)."""
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    low, high = hard.debris
    n = int(rng.integers(low, max(high, low + 1)) * h * w / 1e6 * 1.0) // 1
    for _ in range(n):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        value = int(rng.uniform(80, 230))
        if rng.random() < 0.75:
            r = rng.uniform(0.6, 1.8)
            cv2.circle(canvas, (x * 4, y * 4), round(r * 4), value, -1, cv2.LINE_AA, 2)
        else:
            a, length = rng.uniform(0, 2 * math.pi), rng.uniform(3, 7)
            end = (round((x + length * math.cos(a)) * 4), round((y + length * math.sin(a)) * 4))
            cv2.line(canvas, (x * 4, y * 4), end, value, 1, cv2.LINE_AA, 2)
    return cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), 0.6)


@dataclass
class _Object:
    opacity: np.ndarray  # what is seen (defocused when the object is)
    mask: np.ndarray  # the truth (in focus)
    glint: np.ndarray | None
    contrast: float
    defocused: bool


def _draw_object(taxon: str, rng: np.random.Generator, hard: Hardness) -> _Object:
    d, g = object_opacity(taxon, rng)
    f = min(1.0, REFERENCE_CAP / max(d.shape)) * rng.uniform(0.35, 1.0)
    size = (max(3, round(d.shape[1] * f)), max(3, round(d.shape[0] * f)))
    d = cv2.resize(d, size, interpolation=cv2.INTER_AREA)
    g = None if g is None else cv2.resize(g, size, interpolation=cv2.INTER_AREA)
    contrast = 1.0
    if taxon == "marine_snow":
        contrast = rng.uniform(*hard.snow_contrast)
    elif rng.random() < hard.faint:
        contrast = rng.uniform(0.35, 0.7)
    mask = _true_mask(d * contrast, taxon)  # what an annotator sees of a faint object
    defocused = bool(rng.random() < hard.defocus)
    if defocused:
        sigma = rng.uniform(*hard.defocus_sigma)
        m = math.ceil(3 * sigma)
        d = cv2.GaussianBlur(cv2.copyMakeBorder(d, m, m, m, m, cv2.BORDER_CONSTANT), (0, 0), sigma)
        mask = cv2.copyMakeBorder(mask, m, m, m, m, cv2.BORDER_CONSTANT)
        if g is not None:
            g = cv2.copyMakeBorder(g, m, m, m, m, cv2.BORDER_CONSTANT)
            g = cv2.GaussianBlur(g, (0, 0), sigma)
    return _Object(d, mask, g, contrast, defocused)


def _free_spot(labels: np.ndarray, obj: _Object, rng: np.random.Generator):
    """A place where the object's box touches nothing (a 2 px margin), or None."""
    h, w = labels.shape
    oh, ow = obj.mask.shape
    if ow >= w - 4 or oh >= h - 4:
        return None
    for _ in range(60):
        x, y = int(rng.integers(2, w - ow - 1)), int(rng.integers(2, h - oh - 1))
        if not labels[y - 2 : y + oh + 2, x - 2 : x + ow + 2].any():
            return x, y
    return None


def _touching_spot(labels: np.ndarray, obj: _Object, other: int, rng, hard: Hardness):
    """A place where the object touches instance ``other`` and overlaps it (and any other
    instance) by at most ``max_overlap`` of the smaller area, or None."""
    h, w = labels.shape
    oh, ow = obj.mask.shape
    ys, xs = np.nonzero(labels == other)
    if len(xs) == 0 or ow >= w or oh >= h:
        return None
    area = int(obj.mask.sum())
    my, mx = np.argwhere(obj.mask).mean(0) if area else (oh / 2, ow / 2)
    r_obj, r_other = math.sqrt(area / math.pi), math.sqrt(len(xs) / math.pi)
    cx, cy = xs.mean(), ys.mean()
    grown = cv2.dilate(obj.mask, np.ones((3, 3), np.uint8))
    for _ in range(40):
        a = rng.uniform(0, 2 * math.pi)
        dist = (r_obj + r_other) * rng.uniform(0.5, 1.0)
        x, y = round(cx + dist * math.cos(a) - mx), round(cy + dist * math.sin(a) - my)
        if x < 0 or y < 0 or x + ow > w or y + oh > h:
            continue
        under = labels[y : y + oh, x : x + ow]
        if not (under[grown > 0] == other).any():
            continue
        hit = under[obj.mask > 0]
        ids, counts = np.unique(hit[hit > 0], return_counts=True)
        ok = all(
            c <= hard.max_overlap * min(area, int((labels == i).sum()))
            for i, c in zip(ids, counts, strict=True)
        )
        if ok:
            return x, y
    return None


def render_hard_frame(
    rng: np.random.Generator,
    *,
    width: int = 512,
    height: int = 512,
    n_objects: int = 8,
    dark_field: bool = False,
    taxa: Sequence[str] | None = None,
    hardness: Hardness | None = None,
) -> HardFrame:
    """Render a hard full frame (2-D uint8) with its instance label map and descriptions.

    ``taxa`` names the objects to draw (else ``n_objects`` drawn by the plankton taxon
    frequencies). Objects that find no place are left out (rare; the truth says what was
    drawn). :data:`EASY` gives frames like :func:`~seawatch.models.plankton.synthetic.
    render_full_frame` (separate, in focus, even light) with the same truth.
    """
    if width < 64 or height < 64 or n_objects < 0:
        msg = f"frame must be >= 64x64 with n_objects >= 0, got {width}x{height}, {n_objects}"
        raise ValueError(msg)
    hard = hardness or Hardness()
    names = list(taxa) if taxa is not None else sample_taxa(rng, n_objects)
    for name in names:
        if name not in TAXA:
            msg = f"unknown taxon {name!r}; expected one of {', '.join(TAXA)}"
            raise ValueError(msg)
    labels = np.zeros((height, width), np.int32)
    absorb = np.zeros((height, width), np.float32)  # -log transmission (bright-field)
    glow = np.zeros((height, width), np.float32)  # added light (dark-field)
    glint = np.zeros((height, width), np.float32)
    strength = rng.uniform(0.6, 0.9) if not dark_field else rng.uniform(140, 235)
    placed: list[tuple[str, bool, bool]] = []
    for taxon in names:
        obj = _draw_object(taxon, rng, hard)
        spot, touching = None, False
        if placed and rng.random() < hard.touching:
            other = int(rng.integers(1, len(placed) + 1))
            spot = _touching_spot(labels, obj, other, rng, hard)
            touching = spot is not None
        if spot is None:
            spot = _free_spot(labels, obj, rng)
        if spot is None:
            continue
        x, y = spot
        oh, ow = obj.mask.shape
        index = len(placed) + 1
        region = labels[y : y + oh, x : x + ow]
        if touching:
            grown = cv2.dilate(obj.mask, np.ones((3, 3), np.uint8))
            neighbours = {int(i) for i in np.unique(region[grown > 0]) if i}
            placed = [(t, tc or (i + 1) in neighbours, df) for i, (t, tc, df) in enumerate(placed)]
        region[obj.mask > 0] = index
        a = np.clip(obj.opacity * obj.contrast, 0, 0.999)
        if dark_field:
            glow[y : y + oh, x : x + ow] += a
        else:
            absorb[y : y + oh, x : x + ow] -= np.log1p(-strength * a)
        if obj.glint is not None:
            glint[y : y + oh, x : x + ow] = np.maximum(glint[y : y + oh, x : x + ow], obj.glint)
        placed.append((taxon, touching, obj.defocused))
    debris = _debris((height, width), rng, hard)
    bg = uneven_background((height, width), rng, dark_field)
    light = _illumination((height, width), rng, hard.illumination)
    if dark_field:
        img = bg * light + strength * np.clip(glow + debris, 0, 1) * light
    else:
        bg = bg * light
        img = bg * np.exp(-absorb) * (1.0 - strength * debris) + (255.0 - bg) * 0.85 * glint
    img += sensor_noise((height, width), rng, rng.uniform(1.0, 4.0))
    image = np.clip(img, 0, 255).astype(np.uint8)
    # An instance covered entirely by later ones is no longer in the truth.
    visible = np.bincount(labels.ravel(), minlength=len(placed) + 1)[1:] > 0
    if not visible.all():
        remap = np.zeros(len(placed) + 1, np.int32)
        remap[1:][visible] = np.arange(1, int(visible.sum()) + 1)
        labels = remap[labels]
        placed = [p for p, v in zip(placed, visible, strict=True) if v]
    return HardFrame(
        image=image,
        labels=labels,
        taxa=tuple(t for t, _, _ in placed),
        touching=tuple(tc for _, tc, _ in placed),
        defocused=tuple(df for _, _, df in placed),
    )


def esd_of_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """ESD (px) of instances 1..n of a label map, each from its filled visible mask."""
    out = np.zeros(n, np.float64)
    for i in range(n):
        mask = (labels == i + 1).astype(np.uint8)
        if mask.any():
            out[i] = 2.0 * math.sqrt(float(_fill(mask).sum()) / math.pi)
    return out


__all__ = [
    "EASY",
    "MASK_LEVEL",
    "MIN_ESD_PX",
    "REFERENCE_CAP",
    "HardFrame",
    "Hardness",
    "esd_of_labels",
    "render_hard_frame",
]
