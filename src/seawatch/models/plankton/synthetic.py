"""Synthetic plankton that looks like flow-imager and scanner ROIs (numpy + OpenCV only).

Each taxon is drawn as an *opacity* map (0 = clear, 1 = opaque) in its own rotated frame with
anti-aliased OpenCV primitives: translucent bodies, denser organs, appendages one or two
pixels wide. The map is then cropped to the object, partly broken, defocused (all or part of
it) and composited onto a background: bright-field (dark object on a light, uneven field) or
dark-field (bright object on black), with sensor noise. :func:`render_full_frame` pastes
many objects into one large vignetted field; :func:`make_segmented_dataset` cuts such frames
with the daemon's own segmentation and labels the objects by the frame's ground truth. No
torch: the daemon's demo uses this at run time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from seawatch.contracts.preprocess import prepare_roi
from seawatch.ingest.segment import SegmentParams, segment_full
from seawatch.models.plankton._segmented import COUNT_KEYS, match_objects, shuffled_crops
from seawatch.models.plankton._taxa import RENDERERS, UNBREAKABLE, Pen

TAXA: tuple[str, ...] = (
    "appendicularian",
    "bubble",
    "chaetognath",
    "copepod",
    "detritus",
    "diatom_chain",
    "fiber",
    "marine_snow",
    "noctiluca",
    "radiolarian",
)

#: Relative abundance in a typical sample: debris and copepods dominate, some taxa are rare.
TAXON_FREQUENCIES: dict[str, float] = {
    "detritus": 0.30,
    "marine_snow": 0.22,
    "copepod": 0.18,
    "diatom_chain": 0.10,
    "bubble": 0.06,
    "fiber": 0.05,
    "appendicularian": 0.04,
    "noctiluca": 0.03,
    "chaetognath": 0.01,
    "radiolarian": 0.01,
}

MIN_SIDE, MAX_SIDE = 40, 300  # ROI side bounds in pixels


def _density(
    taxon: str, rng: np.random.Generator, draw: Callable[[np.random.Generator], Pen] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Opacity (float32 0..1) and optional glint of one object, cropped, broken, defocused.
    ``draw`` renders a taxon this instrument's classes lack (:mod:`.novel`)."""
    if draw is None and taxon not in RENDERERS:
        msg = f"unknown taxon {taxon!r}; expected one of {', '.join(TAXA)}"
        raise ValueError(msg)
    pen = (draw or RENDERERS[taxon])(rng)
    opacity, glint = pen.canvas, pen.glint
    if taxon not in UNBREAKABLE and rng.random() < 0.12:  # broken organism: cut a side off
        side = opacity.shape[0]
        a, off = rng.uniform(0, 2 * math.pi), side * rng.uniform(0.05, 0.3)
        n, t = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        c = side / 2 + n * off
        poly = np.array(
            [c + t * side, c + t * side + n * side, c - t * side + n * side, c - t * side]
        )
        cv2.fillPoly(opacity, [np.round(poly).astype(np.int32)], 0)
    x, y, w, h = cv2.boundingRect(opacity)
    if w == 0 or h == 0:  # nothing drawn or all cut away: keep the whole (empty) canvas
        x, y, w, h = 0, 0, opacity.shape[1], opacity.shape[0]
    m = int(rng.integers(3, 16))
    d = opacity[y : y + h, x : x + w].astype(np.float32) * (1.0 / 255.0)
    d = cv2.copyMakeBorder(d, m, m, m, m, cv2.BORDER_CONSTANT, value=0)
    g = None
    if glint is not None:
        g = glint[y : y + h, x : x + w].astype(np.float32) * (1.0 / 255.0)
        g = cv2.copyMakeBorder(g, m, m, m, m, cv2.BORDER_CONSTANT, value=0)
    sigma = rng.uniform(0.4, 0.9) + (rng.uniform(0.5, 2.0) if rng.random() < 0.3 else 0.0)
    d = cv2.GaussianBlur(d, (0, 0), sigma)
    if rng.random() < 0.3:  # partly out of focus: blur grows across the object
        ramp = _ramp(d.shape, rng)
        d = d * (1 - ramp) + cv2.GaussianBlur(d, (0, 0), rng.uniform(1.5, 3.0)) * ramp
    if g is not None:
        g = cv2.GaussianBlur(g, (0, 0), sigma + 1.0)
    return d, g


def _ramp(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A linear 0..1 ramp across an image in a random direction (float32)."""
    h, w = shape[:2]
    a = rng.uniform(0, 2 * math.pi)
    xs = np.arange(w, dtype=np.float32)[None, :] * np.float32(math.cos(a) / max(w, 1))
    ys = np.arange(h, dtype=np.float32)[:, None] * np.float32(math.sin(a) / max(h, 1))
    ramp = xs + ys
    ramp -= ramp.min()
    return ramp / max(float(ramp.max()), 1e-6)


def _fit(d: np.ndarray, g: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pad or shrink an object so its ROI is MIN_SIDE..MAX_SIDE pixels per side."""
    h, w = d.shape
    if max(h, w) > MAX_SIDE:
        f = MAX_SIDE / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        d = cv2.resize(d, size, interpolation=cv2.INTER_AREA)
        g = None if g is None else cv2.resize(g, size, interpolation=cv2.INTER_AREA)
        h, w = d.shape
    py, px = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
    pads = (py // 2, py - py // 2, px // 2, px - px // 2)
    d = cv2.copyMakeBorder(d, *pads, cv2.BORDER_CONSTANT, value=0)
    g = None if g is None else cv2.copyMakeBorder(g, *pads, cv2.BORDER_CONSTANT, value=0)
    return d, g


def _background(shape: tuple[int, int], rng: np.random.Generator, dark_field: bool) -> np.ndarray:
    """An uneven field: level + linear gradient + low-frequency blotches (float32)."""
    h, w = shape
    level = rng.uniform(4, 30) if dark_field else rng.uniform(175, 240)
    spread = rng.uniform(1, 5) if dark_field else rng.uniform(3, 16)
    blotches = cv2.resize(
        rng.normal(0, spread / 2, (3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    return level + spread * (_ramp(shape, rng) - 0.5) + blotches


@functools.cache
def _noise_bank() -> np.ndarray:
    """A fixed field of unit Gaussian noise; ROIs take random windows of it (fast)."""
    return np.random.default_rng(20240917).standard_normal(
        (2 * MAX_SIDE, 2 * MAX_SIDE), dtype=np.float32
    )


def _noise(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor noise with standard deviation ``sigma`` (float32)."""
    h, w = shape
    if h > MAX_SIDE or w > MAX_SIDE:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    bank = _noise_bank()
    y, x = int(rng.integers(0, bank.shape[0] - h)), int(rng.integers(0, bank.shape[1] - w))
    window = bank[y : y + h, x : x + w]
    if rng.random() < 0.5:
        window = window.T if h == w else window[::-1]
    return window * np.float32(sigma)


def object_opacity(taxon: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """One object's opacity (float32 0..1, cropped, maybe broken and defocused) and glint,
    as every generator here draws it (for other generators: :mod:`seawatch.models.
    segmentation.synthetic`)."""
    return _density(taxon, rng)


def uneven_background(
    shape: tuple[int, int], rng: np.random.Generator, dark_field: bool
) -> np.ndarray:
    """The uneven field objects are composited on (float32, grey levels)."""
    return _background(shape, rng, dark_field)


def sensor_noise(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor noise of standard deviation ``sigma`` (float32)."""
    return _noise(shape, rng, sigma)


def render_roi(
    taxon: str,
    rng: np.random.Generator,
    *,
    dark_field: bool = False,
    draw: Callable[[np.random.Generator], Pen] | None = None,
) -> np.ndarray:
    """Render one object crop (2-D uint8, 40..300 px per side) of ``taxon``.

    Bright-field: a dark, translucent object on a light uneven background; dark-field: a
    bright object on black. Rotation, size, focus, contrast and noise vary with ``rng``.
    ``draw``: the pen of a taxon outside :data:`TAXA` (:mod:`.novel`), same optics.
    """
    d, g = _fit(*_density(taxon, rng, draw))
    bg = _background(d.shape, rng, dark_field)
    if dark_field:
        img = bg + rng.uniform(140, 235) * d
    else:
        img = bg * (1.0 - rng.uniform(0.55, 0.95) * d)
        if g is not None:
            img += (255.0 - bg) * 0.85 * g
    img += _noise(d.shape, rng, rng.uniform(1.0, 5.0))
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_taxa(rng: np.random.Generator, n: int, *, balanced: bool = False) -> list[str]:
    """Draw ``n`` taxon names, by :data:`TAXON_FREQUENCIES` or uniformly when ``balanced``."""
    p = None if balanced else np.array([TAXON_FREQUENCIES[t] for t in TAXA])
    return [TAXA[i] for i in rng.choice(len(TAXA), size=n, p=p)]


def render_full_frame(
    rng: np.random.Generator,
    *,
    width: int = 1280,
    height: int = 960,
    n_objects: int = 30,
    dark_field: bool = False,
    taxa: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """Render a large field of view with ``n_objects`` objects and return it with its truth.

    The background is vignetted and uneven; objects are blended by their opacity at places
    that do not overlap. Taxa are drawn by :data:`TAXON_FREQUENCIES` unless ``taxa`` names
    the objects to draw (then ``n_objects`` is ``len(taxa)``). Returns the 2-D uint8 frame
    and ``(taxon, (x, y, w, h))`` boxes tight around each object.
    """
    if taxa is not None:
        n_objects = len(taxa)
    if width < 64 or height < 64 or n_objects < 0:
        msg = f"frame must be >= 64x64 with n_objects >= 0, got {width}x{height}, {n_objects}"
        raise ValueError(msg)
    bg = _background((height, width), rng, dark_field)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
    vignette = 1.0 - rng.uniform(0.1, 0.3) * r2 / 2
    opacity = np.zeros((height, width), np.float32)
    glint = np.zeros_like(opacity)
    taken = np.zeros((height, width), np.uint8)
    cap = max(16, min(width, height) // 6)
    truth: list[tuple[str, tuple[int, int, int, int]]] = []
    for taxon in sample_taxa(rng, n_objects) if taxa is None else list(taxa):
        d, g = _density(taxon, rng)
        f = min(1.0, cap / max(d.shape)) * rng.uniform(0.35, 1.0)
        for _ in range(200):
            size = (max(3, round(d.shape[1] * f)), max(3, round(d.shape[0] * f)))
            if size[0] < width - 4 and size[1] < height - 4:
                x = int(rng.integers(2, width - size[0] - 1))
                y = int(rng.integers(2, height - size[1] - 1))
                if not taken[y - 2 : y + size[1] + 2, x - 2 : x + size[0] + 2].any():
                    break
            f *= 0.97
        else:
            msg = f"cannot place {n_objects} objects without overlap in {width}x{height}"
            raise ValueError(msg)
        ds = cv2.resize(d, size, interpolation=cv2.INTER_AREA)
        opacity[y : y + size[1], x : x + size[0]] = ds
        if g is not None:
            glint[y : y + size[1], x : x + size[0]] = cv2.resize(g, size)
        taken[y : y + size[1], x : x + size[0]] = 1
        bx, by, bw, bh = cv2.boundingRect((ds > 0.08).astype(np.uint8))
        if bw == 0:
            bx, by, bw, bh = 0, 0, size[0], size[1]
        truth.append((taxon, (x + bx, y + by, bw, bh)))
    if dark_field:
        img = bg + rng.uniform(140, 235) * opacity * vignette
    else:
        bg *= vignette
        img = bg * (1.0 - rng.uniform(0.6, 0.9) * opacity) + (255.0 - bg) * 0.85 * glint
    img += _noise((height, width), rng, rng.uniform(1.0, 4.0))
    return np.clip(img, 0, 255).astype(np.uint8), truth


def make_dataset(
    n_per_class: int,
    rng: np.random.Generator,
    *,
    size: int,
    dark_fraction: float = 0.2,
    taxa: Sequence[str] | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced, shuffled set of prepared crops (uint8 N x size x size) and labels.

    ``n_per_class`` crops of each of ``taxa`` (default: all); labels (int64) index
    :data:`TAXA`. About ``dark_fraction`` of the crops are dark-field, so the polarity
    normalisation of :func:`prepare_roi` is part of what is learnt.
    ``progress``, when given, is called with the number of crops done since its last call.
    """
    if n_per_class < 1 or size < 8:
        msg = f"need n_per_class >= 1 and size >= 8, got {n_per_class} and {size}"
        raise ValueError(msg)
    chosen = [TAXA.index(t) for t in (TAXA if taxa is None else taxa)]
    labels = np.repeat(np.array(chosen, dtype=np.int64), n_per_class)
    labels = labels[rng.permutation(labels.size)]
    images = np.empty((labels.size, size, size), np.uint8)
    for i, label in enumerate(labels):
        roi = render_roi(TAXA[label], rng, dark_field=bool(rng.random() < dark_fraction))
        images[i] = prepare_roi(roi, size)
        if progress is not None and (i + 1) % 50 == 0:
            progress(50)
    if progress is not None and labels.size % 50:
        progress(labels.size % 50)
    return images, labels


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """An 8-bit image after a JPEG round trip, as the in-situ camera sends its frames."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def make_segmented_dataset(
    n_frames: int,
    rng: np.random.Generator,
    *,
    size: int,
    width: int = 1280,
    height: int = 960,
    objects: tuple[int, int] = (15, 45),
    dark_fraction: float = 0.5,
    jpeg_fraction: float = 0.5,
    jpeg_quality: int = 90,
    min_iou: float = 0.3,
    min_inside: float | None = 0.8,
    max_parts: int = 2,
    params: SegmentParams | None = None,
    counts: dict[str, int] | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Prepared crops (uint8 N x size x size) and labels of objects *segmented* from full frames.

    What the daemon serves for full frames: ``n_frames`` frames from :func:`render_full_frame`
    (``objects`` = [low, high) objects each, taxa dealt from a class-balanced shuffled deck,
    ``dark_fraction`` dark-field, ``jpeg_fraction`` through a JPEG round trip) are cut by
    :func:`~seawatch.ingest.segment.segment_full` (``params``, default ``SegmentParams()``)
    and each object gets the taxon of the ground-truth box it matches (whole objects by IoU
    >= ``min_iou``, pieces by ``min_inside`` of their box inside one truth box, see
    :mod:`._segmented`); the others are dropped. The crops go through :func:`prepare_roi` and
    are shuffled. ``counts``, when given, is incremented by the match counts (frames,
    truth_objects, truth_found, segmented, whole, parts, parts_over_cap, dropped);
    ``progress`` is called with 1 per frame.
    """
    low, high = objects
    if n_frames < 1 or size < 8 or not 0 <= low < high:
        msg = f"need n_frames >= 1, size >= 8, 0 <= low < high objects; got {n_frames}, "
        msg += f"{size}, {objects}"
        raise ValueError(msg)
    params = params or SegmentParams()
    per_frame = rng.integers(low, high, n_frames)
    deck = rng.permutation(np.arange(int(per_frame.sum())) % len(TAXA))
    crops: list[np.ndarray] = []
    labels: list[int] = []
    total = dict.fromkeys(COUNT_KEYS, 0)
    start = 0
    for n in per_frame.tolist():
        dealt = deck[start : start + n]
        start += n
        dark = bool(rng.random() < dark_fraction)
        frame, truth = render_full_frame(
            rng, width=width, height=height, dark_field=dark, taxa=[TAXA[i] for i in dealt]
        )
        if rng.random() < jpeg_fraction:
            frame = _jpeg(frame, jpeg_quality)
        found = segment_full(frame, params, None)
        pairs, frame_counts = match_objects(
            [obj.bbox for obj in found],
            [box for _, box in truth],
            pad=params.pad_px,
            shape=frame.shape,
            min_iou=min_iou,
            min_inside=min_inside,
            max_parts=max_parts,
        )
        for key, value in frame_counts.items():
            total[key] += value
        crops += [prepare_roi(found[i].image, size) for i, _ in pairs]
        labels += [int(dealt[j]) for _, j in pairs]
        if progress is not None:
            progress(1)
    return shuffled_crops(rng, crops, labels, size, total, counts)


__all__ = [
    "MAX_SIDE",
    "MIN_SIDE",
    "TAXA",
    "TAXON_FREQUENCIES",
    "make_dataset",
    "make_segmented_dataset",
    "object_opacity",
    "render_full_frame",
    "render_roi",
    "sample_taxa",
    "sensor_noise",
    "uneven_background",
]
