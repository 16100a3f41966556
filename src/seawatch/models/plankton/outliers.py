"""Drawn outliers for outlier exposure: organisms of no taxon, from a grammar of parts.

The out-of-distribution scorer (:mod:`seawatch.contracts.ood`) learns what the training
distribution is *not* from these (Hendrycks et al., 2019, "Deep anomaly detection with
outlier exposure", ICLR). Each outlier is a random composition, not a drawing of any taxon:

- a body: an ellipse, a smooth random star-shaped outline, a ring, a random polygon, or none
  (a bare filament, spiral or branching tree);
- optionally repeated along a curve (chains and segmented bodies) or scattered (clusters);
- an interior: dots, radial lines, concentric rings, an inner body, a mottled texture;
- appendages: short hairs all round, a few long spines, tentacles on one side, horns.

Neither the training taxa (:mod:`._taxa`) nor the held-out taxa of :mod:`.novel` (calibration
or test) are drawn here; the grammar is wide enough that some draws look like real organisms
and some like nothing at all, which is the point. Rendered through the training instrument's
optics (:func:`~seawatch.models.plankton.synthetic.render_roi`), so only the organism is new.
numpy + OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from seawatch.contracts.preprocess import prepare_roi
from seawatch.models.plankton._taxa import Pen, _curve
from seawatch.models.plankton.synthetic import render_roi

DARK_FIELD_SHARE = 0.2  # as the training taxa's ROIs
BODIES = ("ellipse", "star", "ring", "polygon", "none")
REACH = {"hairs": (0.1, 0.5), "spines": (0.6, 2.5), "tentacles": (0.8, 2.5), "horns": (0.6, 2.0)}


def _outline(rng: np.random.Generator, r: float, kind: str) -> np.ndarray:
    """A closed outline of about radius ``r`` (M x 2)."""
    th = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    if kind == "star":
        rad = np.ones_like(th)
        for k in rng.integers(2, 9, size=int(rng.integers(1, 4))):
            rad += rng.uniform(0.05, 0.35) * np.cos(k * th + rng.uniform(0, 2 * math.pi))
        rad = np.clip(rad, 0.25, None)
    elif kind == "polygon":
        th = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(3, 9))))
        rad = rng.uniform(0.5, 1.0, th.size)
    else:
        rad = np.ones_like(th)
    aspect = rng.uniform(0.35, 1.0)
    return np.stack([r * rad * np.cos(th), r * aspect * rad * np.sin(th)], 1)


def _body(pen: Pen, rng: np.random.Generator, centre: np.ndarray, r: float, kind: str) -> None:
    """One body at ``centre`` with its interior."""
    if kind == "none":
        return
    pts = _outline(rng, r, "ellipse" if kind == "ring" else kind) + centre
    fill = rng.uniform(20, 200)
    if kind == "ring":
        pen.line(np.vstack([pts, pts[:1]]), rng.uniform(120, 240), int(rng.integers(2, 7)))
    else:
        pen.poly(pts, fill)
        if rng.random() < 0.6:
            pen.line(np.vstack([pts, pts[:1]]), rng.uniform(60, 250), int(rng.integers(1, 4)))
    inner = rng.choice(["dots", "radial", "rings", "inner", "mottle", "plain"])
    if inner == "dots":
        for _ in range(int(rng.integers(1, 12))):
            d, a = r * rng.uniform(0, 0.7), rng.uniform(0, 2 * math.pi)
            size = r * rng.uniform(0.04, 0.2)
            pen.ellipse(
                centre + np.array([d * math.cos(a), d * math.sin(a)]),
                (size, size),
                rng.uniform(60, 250),
            )
    elif inner == "radial":
        for a in np.linspace(0, 2 * math.pi, int(rng.integers(6, 50)), endpoint=False):
            u = np.array([math.cos(a), math.sin(a)])
            pen.line(np.array([centre + u * r * 0.15, centre + u * r * 0.85]), rng.uniform(60, 230))
    elif inner == "rings":
        for f in np.linspace(0.2, 0.85, int(rng.integers(2, 6))):
            pen.ellipse(tuple(centre), (r * f, r * f), rng.uniform(60, 230), thickness=1)
    elif inner == "inner":
        pen.poly(_outline(rng, r * rng.uniform(0.2, 0.6), "star") + centre, rng.uniform(80, 250))


def _appendages(pen: Pen, rng: np.random.Generator, centre: np.ndarray, r: float) -> None:
    """Hairs, spines, tentacles or horns around a body."""
    kind = rng.choice(["hairs", "spines", "tentacles", "horns", "none"])
    if kind == "none":
        return
    count = {"hairs": (16, 80), "spines": (1, 8), "tentacles": (2, 12), "horns": (1, 4)}[kind]
    span = 2 * math.pi if kind != "tentacles" else rng.uniform(0.5, 2.5)
    start = rng.uniform(0, 2 * math.pi)
    value = rng.uniform(80, 230)
    for a in start + np.sort(rng.uniform(0, span, int(rng.integers(*count)))):
        u = np.array([math.cos(a), math.sin(a)])
        base = centre + u * r * 0.95
        reach = r * rng.uniform(*REACH[kind])
        tip = base + u * reach
        if kind == "horns":
            side = np.array([-u[1], u[0]]) * r * rng.uniform(0.1, 0.3)
            pen.poly(np.array([base - side, tip, base + side]), value)
        else:
            bend = rng.uniform(-0.4, 0.4) if kind == "tentacles" else rng.uniform(-0.1, 0.1)
            pen.line(_curve(tuple(base), tuple(tip), bend, 10), value, int(rng.integers(1, 3)))


def _filament(pen: Pen, rng: np.random.Generator, r: float) -> None:
    """A bare spiral, random walk or branching tree."""
    kind = rng.choice(["spiral", "walk", "tree"])
    value, width = rng.uniform(100, 240), int(rng.integers(1, 5))
    if kind == "spiral":
        th = np.linspace(0, rng.uniform(2, 5) * math.pi, 80)
        rad = r * (0.1 + 0.9 * th / th[-1])
        pen.line(
            np.stack([rad * np.cos(th), rad * np.sin(th) * rng.uniform(0.5, 1)], 1), value, width
        )
    elif kind == "walk":
        steps = rng.normal(0, 1, (40, 2)).cumsum(0)
        steps = steps - steps.mean(0)
        pen.line(steps * r / max(1e-6, float(np.abs(steps).max())), value, width)
    else:
        stack = [(np.zeros(2), rng.uniform(0, 2 * math.pi), r * 0.6, 0)]
        while stack:
            p, a, length, depth = stack.pop()
            q = p + length * np.array([math.cos(a), math.sin(a)])
            pen.line(np.array([p, q]), value, max(1, width - depth))
            if depth < 4:
                for da in rng.uniform(-0.9, 0.9, int(rng.integers(1, 4))):
                    stack.append((q, a + da, length * rng.uniform(0.4, 0.8), depth + 1))


def draw_outlier(rng: np.random.Generator) -> Pen:
    """One random organism of no taxon (the pen :func:`render_roi` composites)."""
    r = rng.uniform(10, 55)
    kind = str(rng.choice(BODIES))
    layout = rng.choice(["single", "chain", "cluster"], p=[0.55, 0.25, 0.2])
    n = 1 if layout == "single" or kind == "none" else int(rng.integers(2, 9))
    scale = r if n == 1 else r / math.sqrt(n) * 1.4
    pen = Pen(r * 3.2, rng)
    if kind == "none":
        _filament(pen, rng, r * 1.5)
        return pen
    if layout == "chain":
        path = _curve((-r * 1.4, 0), (r * 1.4, 0), rng.uniform(-0.4, 0.4), n)
    else:
        path = rng.normal(0, r * 0.6, (n, 2)) if n > 1 else np.zeros((1, 2))
    for centre in path:
        size = scale * rng.uniform(0.7, 1.2)
        _body(pen, rng, centre, size, kind)
        if n == 1 or rng.random() < 0.5:
            _appendages(pen, rng, centre, size)
    if rng.random() < 0.3:
        pen.mottle(rng, rng.uniform(0.4, 0.9))
    return pen


def outlier_set(n: int, seed: int, *, size: int = 64) -> np.ndarray:
    """``n`` prepared crops (uint8 N x size x size) of drawn outliers."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.uint8)
    for i in range(n):
        dark = bool(rng.random() < DARK_FIELD_SHARE)
        roi = render_roi("outlier", rng, dark_field=dark, draw=draw_outlier)
        images[i] = prepare_roi(roi, size)
    return images


__all__ = ["BODIES", "CORRUPTIONS", "corrupt", "corrupted_set", "draw_outlier", "outlier_set"]


def _noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:  # read noise
        return x + rng.normal(0, rng.uniform(4, 14), x.shape)
    shot = rng.standard_normal(x.shape) * np.sqrt(np.clip(x, 0, 255) + 4)
    return x + shot * rng.uniform(0.5, 1.5)


def _impulses(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hits = rng.random(x.shape) < rng.uniform(0.001, 0.01)
    x[hits] = rng.choice([0.0, 255.0], size=int(hits.sum()))
    return x


def _blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:  # defocus
        return cv2.GaussianBlur(x, (0, 0), rng.uniform(1.2, 3.0))
    n = int(rng.integers(3, 10))  # motion
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2] = 1.0
    rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (n, n))
    return cv2.filter2D(x, -1, kernel / max(float(kernel.sum()), 1e-6))


def _pixelate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape
    f = rng.uniform(0.3, 0.7)
    small = cv2.resize(x, (max(4, round(w * f)), max(4, round(h * f))), cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _jpeg(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 50))]
    ok, data = cv2.imencode(".jpg", np.clip(x, 0, 255).astype(np.uint8), quality)
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(np.float32) if ok else x


def _gamma(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(0.5, 2.0)


def _bands(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape
    bands = rng.normal(0, 1, (1, int(rng.integers(4, 20)))).astype(np.float32)
    if rng.random() < 0.5:  # horizontal instead of vertical
        bands = bands.T
    return x + rng.uniform(3, 12) * cv2.resize(bands, (w, h), interpolation=cv2.INTER_CUBIC)


def _vignette(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    return x * (1.0 - rng.uniform(0.15, 0.4) * np.clip(r2, 0, 2) / 2)


def _contrast(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mean = float(x.mean())
    return mean + (x - mean) * rng.uniform(0.3, 0.6)


#: Generic corruption families (Hendrycks & Dietterich 2019: noise, blur, digital).
CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise": _noise,
    "impulses": _impulses,
    "blur": _blur,
    "pixelate": _pixelate,
    "jpeg": _jpeg,
    "gamma": _gamma,
    "bands": _bands,
    "vignette": _vignette,
    "contrast": _contrast,
}


def corrupt(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another instrument's optics on one ROI (2-D uint8): one to three of
    :data:`CORRUPTIONS`, in random order."""
    x = img.astype(np.float32)
    names = list(CORRUPTIONS)
    for i in rng.choice(len(names), size=int(rng.integers(1, 4)), replace=False):
        x = CORRUPTIONS[names[int(i)]](x, rng)
    return np.clip(x, 0, 255).astype(np.uint8)


def corrupted_set(n: int, seed: int, *, size: int = 64) -> np.ndarray:
    """``n`` prepared crops of the training taxa through corrupted optics (another
    instrument than the training one: noise, blur, compression, background)."""
    from seawatch.models.plankton.synthetic import TAXA

    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.uint8)
    for i in range(n):
        taxon = TAXA[int(rng.integers(len(TAXA)))]
        roi = render_roi(taxon, rng, dark_field=bool(rng.random() < DARK_FIELD_SHARE))
        images[i] = prepare_roi(corrupt(roi, rng), size)
    return images
