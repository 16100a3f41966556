"""A second, shifted plankton instrument: the target domain of the few-label benchmark.

As different from :mod:`seawatch.models.plankton.synthetic` as two real instruments are, so
that a model pretrained on the first has to *transfer*, not recognise its own drawings:

- optics: a coarser sensor (objects rendered at 35-70 % of their size and scaled back up),
  an anisotropic (motion or astigmatic) point-spread function, a gamma curve, vignetting
  inside the ROI, and dark-field for most frames (the first instrument is mostly bright-field);
- styles of the same taxa: stretched, sheared and thickened or thinned bodies, denser or
  fainter fills;
- two taxa the first instrument never drew: ``ciliate`` (an oval cell with a fringe of cilia
  and a macronucleus) and ``centric_diatom`` (a disc with radial striae and a rim);
- other noise and background: shot noise that grows with the signal, hot pixels, a textured
  (streaky) field, heavier JPEG compression.

numpy + OpenCV only. Seeds are the caller's: the benchmark keeps separate seed ranges for
unlabelled pretraining, labelled training, validation and the final test draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from seawatch.contracts.preprocess import prepare_roi
from seawatch.models.plankton._taxa import Pen, _curve
from seawatch.models.plankton.synthetic import TAXA, _density, _fit, _ramp

NEW_TAXA: tuple[str, ...] = ("ciliate", "centric_diatom")
SHIFTED_TAXA: tuple[str, ...] = (*TAXA, *NEW_TAXA)
DARK_FIELD_SHARE = 0.7


def _ciliate(rng: np.random.Generator) -> Pen:
    length = rng.uniform(30, 90)
    width = length * rng.uniform(0.45, 0.7)
    pen = Pen(length * 0.75, rng)
    pen.ellipse((0, 0), (length / 2, width / 2), rng.uniform(70, 120))
    pen.ellipse(
        (length * rng.uniform(-0.1, 0.1), 0), (length * 0.18, width * 0.22), rng.uniform(170, 230)
    )  # macronucleus
    n = int(rng.integers(24, 48))
    for a in np.linspace(0, 2 * math.pi, n, endpoint=False):
        x, y = length / 2 * math.cos(a), width / 2 * math.sin(a)
        reach = rng.uniform(1.12, 1.3)
        pen.line(np.array([(x, y), (x * reach, y * reach)]), rng.uniform(110, 170))
    for _ in range(int(rng.integers(2, 7))):  # food vacuoles
        d, a = rng.uniform(0, 0.3), rng.uniform(0, 2 * math.pi)
        pen.ellipse((length * d * math.cos(a), width * d * math.sin(a)), (3, 3), 200)
    return pen


def _centric_diatom(rng: np.random.Generator) -> Pen:
    r = rng.uniform(18, 60)
    pen = Pen(r * 1.15, rng)
    pen.ellipse((0, 0), (r, r), rng.uniform(60, 110))
    for a in np.linspace(0, 2 * math.pi, int(rng.integers(24, 60)), endpoint=False):
        pen.line(np.array([(r * 0.2 * math.cos(a), r * 0.2 * math.sin(a)),
                           (r * 0.95 * math.cos(a), r * 0.95 * math.sin(a))]),
                 rng.uniform(140, 200))  # fmt: skip
    pen.ellipse((0, 0), (r, r), rng.uniform(200, 250), thickness=int(rng.integers(2, 4)))
    pen.ellipse((0, 0), (r * 0.2, r * 0.2), rng.uniform(180, 240))
    if rng.random() < 0.4:  # a girdle view: a second, offset valve
        pen.line(_curve((-r, r * 0.1), (r, r * 0.1), 0.0, 4), 160, thickness=2)
    return pen


_NEW = {"ciliate": _ciliate, "centric_diatom": _centric_diatom}


def _opacity(taxon: str, rng: np.random.Generator) -> np.ndarray:
    """The object's opacity (float32 0..1) in this instrument's style."""
    if taxon in _NEW:
        pen = _NEW[taxon](rng)
        x, y, w, h = cv2.boundingRect(pen.canvas)
        d = pen.canvas[y : y + max(h, 1), x : x + max(w, 1)].astype(np.float32) / 255.0
        m = int(rng.integers(3, 12))
        d = cv2.copyMakeBorder(d, m, m, m, m, cv2.BORDER_CONSTANT, value=0)
    elif taxon in TAXA:
        d, _ = _density(taxon, rng)
    else:
        msg = f"unknown taxon {taxon!r}; expected one of {', '.join(SHIFTED_TAXA)}"
        raise ValueError(msg)
    # style: stretch and shear the body, thicken or thin it, change how dense it looks
    h, w = d.shape
    sx, sy = rng.uniform(0.75, 1.3), rng.uniform(0.75, 1.3)
    shear = rng.uniform(-0.25, 0.25)
    m = np.array([[sx, shear, 0.0], [0.0, sy, 0.0]], np.float32)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float32) @ m.T
    m[:, 2] -= corners.min(0)
    size = np.ceil(corners.max(0) - corners.min(0)).astype(int) + 1
    d = cv2.warpAffine(d, m, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)
    k = int(rng.integers(0, 3))
    if k:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        d = cv2.dilate(d, kernel) if rng.random() < 0.5 else cv2.erode(d, kernel)
    return np.clip(d ** rng.uniform(0.6, 1.4), 0, 1).astype(np.float32)


def _psf(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A coarse sensor and an anisotropic blur (motion or astigmatism)."""
    h, w = d.shape
    f = rng.uniform(0.35, 0.7)
    small = cv2.resize(d, (max(4, round(w * f)), max(4, round(h * f))), cv2.INTER_AREA)
    d = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    length = int(rng.integers(3, 9))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(d, -1, kernel)


def _field(shape: tuple[int, int], rng: np.random.Generator, dark: bool) -> np.ndarray:
    """A streaky, textured background with vignetting (float32 0..255)."""
    h, w = shape
    level = rng.uniform(10, 45) if dark else rng.uniform(150, 215)
    streaks = cv2.resize(
        rng.normal(0, 1, (1, 12)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    if rng.random() < 0.5:
        streaks = cv2.resize(streaks.T, (w, h), interpolation=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = 1.0 - rng.uniform(0.1, 0.35) * np.clip(r2, 0, 2) / 2
    return (level + rng.uniform(2, 8) * streaks + 6 * (_ramp(shape, rng) - 0.5)) * vignette


def render_shifted(taxon: str, rng: np.random.Generator) -> np.ndarray:
    """One ROI (2-D uint8) of ``taxon`` as the second instrument sees it."""
    d, _ = _fit(_opacity(taxon, rng), None)
    d = _psf(d, rng)
    dark = rng.random() < DARK_FIELD_SHARE
    field = _field(d.shape, rng, dark)
    bright = field + rng.uniform(110, 220) * d  # dark-field: the object shines
    img = bright if dark else field * (1.0 - rng.uniform(0.45, 0.9) * d)
    img = np.clip(img, 0, 255) / 255.0
    img = img ** rng.uniform(0.7, 1.5)  # the camera's response curve
    signal = img * 255.0
    shot = rng.standard_normal(signal.shape).astype(np.float32) * np.sqrt(signal + 4.0)
    img = signal + shot * rng.uniform(0.6, 1.6)
    hot = rng.random(img.shape) < rng.uniform(0.0, 0.004)
    img[hot] = 255.0
    out = np.clip(img, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 70))])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else out


def shifted_set(
    n_per_class: int | Sequence[int],
    seed: int,
    *,
    size: int = 64,
    taxa: Sequence[str] = SHIFTED_TAXA,
) -> tuple[np.ndarray, np.ndarray]:
    """Prepared crops (uint8 N x size x size) and labels (indices into ``taxa``), shuffled.

    ``n_per_class``: one count for every taxon, or one per taxon.
    """
    counts = [n_per_class] * len(taxa) if isinstance(n_per_class, int) else list(n_per_class)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(taxa), dtype=np.int64), counts)
    labels = labels[rng.permutation(labels.size)]
    images = np.empty((labels.size, size, size), np.uint8)
    for i, label in enumerate(labels):
        images[i] = prepare_roi(render_shifted(taxa[label], rng), size)
    return images, labels


__all__ = ["NEW_TAXA", "SHIFTED_TAXA", "render_shifted", "shifted_set"]
