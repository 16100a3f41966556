"""Synthetic whole tank frames: several fish on a tank wall, some facing right, some hidden.

A tank or trawl camera sends whole frames, not tight head-left crops. :func:`render_scene`
draws one: a tank wall (a tinted base, uneven light, vignetting, sensor noise, a few dark
specks of debris), then 1-4 fish of the generator (:mod:`seawatch.models.fish.synthetic`,
the same skin patterns the model was trained on) pasted at random places and scales, about
half of them mirrored (facing right). Fish are drawn in turn, so a later one may cover part
of an earlier one; some are placed across the frame's edge and cut by it. Each fish's ground
truth (:class:`SceneFish`: box, facing, individual, how much of it shows) is returned with
the image, with each fish's **mask** (:attr:`Scene.labels`: the pixels where its pasted alpha
is over one half and no later fish covers it), for the detector's benchmark
(``benchmarks/fish_frames.py``), the fish segmentation network's targets
(:mod:`seawatch.models.fish.segment_train`) and the tests; the
open-set stream as whole frames (:mod:`seawatch.models.fish.open_set_frames`) reuses the
wall, the paste and the camera's finish. :func:`match_boxes` pairs a detector's boxes with
the drawn ones (IoU >= 0.5, one to one).

numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.models.fish.synthetic import Individual, _fish_layer

FRAME_W, FRAME_H = 640, 480
_ASPECT = 2.5  # fish canvas width / height (the model's 160 x 64 input)
_WALLS = np.array(  # BGR 0..1: pale tank wall, blue tank, green water, grey slate
    [[0.78, 0.76, 0.70], [0.70, 0.55, 0.35], [0.45, 0.60, 0.45], [0.55, 0.55, 0.52]],
    np.float32,
)


@dataclass(frozen=True, slots=True)
class SceneFish:
    """One fish in a scene, as drawn: the truth a detector is scored against."""

    individual: str
    box: tuple[int, int, int, int]  # x, y, w, h of its outline in the frame (cut by the edges)
    facing_right: bool  # mirrored: head at large x
    visible: float  # share of its outline not covered by later fish nor cut by the frame


@dataclass(frozen=True, slots=True)
class Scene:
    """A rendered frame (H x W x 3 uint8 BGR), the fish in it, in drawing order, and their
    masks: ``labels`` (H x W int32) is ``i + 1`` where ``fish[i]`` shows, 0 on the wall."""

    image: np.ndarray
    fish: tuple[SceneFish, ...]
    labels: np.ndarray

    def mask(self, i: int) -> np.ndarray:
        """The visible pixels of ``fish[i]`` (H x W bool)."""
        if not 0 <= i < len(self.fish):
            msg = f"fish index {i} out of range: the scene has {len(self.fish)} fish"
            raise IndexError(msg)
        return self.labels == i + 1


def render_scene(
    individuals: list[Individual],
    rng: np.random.Generator,
    *,
    width: int = FRAME_W,
    height: int = FRAME_H,
    n_fish: int | None = None,
    mirror_share: float = 0.5,
    edge_share: float = 0.15,
    overlap_share: float = 0.25,
) -> Scene:
    """One tank frame with ``n_fish`` (default 1-4) fish drawn from ``individuals``.

    ``mirror_share`` of the fish face right; ``edge_share`` are placed across the frame's
    edge (cut by it), ``overlap_share`` over part of the fish drawn before. Fish are
    0.18-0.45 of the frame's width long, nearly horizontal.
    """
    if width < 64 or height < 64:
        msg = f"scene size must be at least 64 x 64, got {width} x {height}"
        raise ValueError(msg)
    if not individuals:
        msg = "render_scene needs at least one individual"
        raise ValueError(msg)
    count = int(rng.integers(1, 5)) if n_fish is None else n_fish
    image = _wall(rng, height, width)
    cover = np.zeros((height, width), np.int16)  # which fish (1-based) shows at each pixel
    drawn: list[tuple[Individual, tuple[int, int, int, int], bool, int, int]] = []
    for k in range(count):
        ind = individuals[int(rng.integers(len(individuals)))]
        fw = int(width * rng.uniform(0.18, 0.45))
        fh = max(16, int(fw / _ASPECT))
        premultiplied, alpha, _ = _fish_layer(ind, rng, fh, fw)
        right = bool(rng.random() < mirror_share)
        if right:
            premultiplied, alpha = premultiplied[:, ::-1], alpha[:, ::-1]
        x0, y0 = _place(rng, width, height, fw, fh, edge_share)
        if drawn and rng.random() < overlap_share:  # over part of the previous fish
            px, py, pw, ph = drawn[-1][1]
            x0 = int(px + pw / 2 - fw / 2 + rng.uniform(-0.6, 0.6) * fw)
            y0 = int(py + ph / 2 - fh / 2 + rng.uniform(-0.6, 0.6) * fh)
        full = int((alpha > 0.5).sum())
        box = _paste(image, cover, premultiplied, alpha, x0, y0, k + 1)
        if box is not None:
            drawn.append((ind, box, right, full, k + 1))
    image = _finish(image, rng)
    fish = tuple(
        SceneFish(ind.name, box, right, float((cover == label).sum()) / max(full, 1))
        for ind, box, right, full, label in drawn
    )
    return Scene(image, fish, _relabel(cover, [d[4] for d in drawn]))


def _relabel(cover: np.ndarray, pasted: list[int]) -> np.ndarray:
    """The paste labels (1-based over every fish tried, some never pasted) as 1-based
    indices into the scene's fish; 0 elsewhere."""
    lut = np.zeros(max(pasted, default=0) + 1, np.int32)
    for i, label in enumerate(pasted):
        lut[label] = i + 1
    return lut[np.clip(cover, 0, len(lut) - 1)]


def _wall(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A tank wall: a tint, a smooth uneven light, vignetting and a few specks of debris."""
    base = _WALLS[rng.integers(len(_WALLS))] * rng.uniform(0.85, 1.1, 3).astype(np.float32)
    coarse = rng.normal(0, 0.06, (3, 4, 1)).astype(np.float32)
    blobs = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
    vignette = 1.0 - rng.uniform(0.05, 0.25) * r2 / 2
    image = (base[None, None, :] + blobs) * vignette[..., None]
    for _ in range(int(rng.integers(0, 6))):  # debris: small dark specks, not fish
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.circle(image, centre, int(rng.integers(1, 4)), (0.2, 0.2, 0.2), -1, cv2.LINE_AA)
    return np.clip(image, 0, 1).astype(np.float32)


def _place(
    rng: np.random.Generator, w: int, h: int, fw: int, fh: int, edge_share: float
) -> tuple[int, int]:
    """Top-left corner of a fish canvas: inside the frame, or across one edge."""
    x0 = int(rng.uniform(0, w - fw))
    y0 = int(rng.uniform(0, h - fh))
    if rng.random() < edge_share:
        cut = rng.uniform(0.2, 0.5)
        side = int(rng.integers(4))
        if side == 0:
            x0 = -int(fw * cut)
        elif side == 1:
            x0 = w - int(fw * (1 - cut))
        elif side == 2:
            y0 = -int(fh * cut)
        else:
            y0 = h - int(fh * (1 - cut))
    return x0, y0


def _paste(
    image: np.ndarray,
    cover: np.ndarray,
    premultiplied: np.ndarray,
    alpha: np.ndarray,
    x0: int,
    y0: int,
    label: int,
) -> tuple[int, int, int, int] | None:
    """Composite a fish canvas at ``(x0, y0)``; its outline's box in the frame, or None."""
    h, w = image.shape[:2]
    fh, fw = alpha.shape
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + fw), min(h, y0 + fh)
    if xb <= xa or yb <= ya:
        return None
    sa = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0]
    sp = premultiplied[ya - y0 : yb - y0, xa - x0 : xb - x0]
    region = image[ya:yb, xa:xb]
    region[:] = region * (1.0 - sa[..., None]) + sp
    inside = sa > 0.5
    if not inside.any():
        return None
    cover[ya:yb, xa:xb][inside] = label
    rows, cols = np.nonzero(inside)
    return (
        xa + int(cols.min()),
        ya + int(rows.min()),
        int(cols.max() - cols.min() + 1),
        int(rows.max() - rows.min() + 1),
    )


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, sensor noise and sometimes JPEG, as a camera would add them."""
    image = image * np.float32(rng.uniform(0.8, 1.15))
    image = image + rng.normal(0, rng.uniform(0.005, 0.025), image.shape).astype(np.float32)
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 92))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_boxes(
    truth: Sequence[tuple[int, int, int, int]],
    found: Sequence[tuple[int, int, int, int]],
    min_iou: float = 0.5,
) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (truth index, found index), best IoU first, each pair's IoU
    at least ``min_iou``: a found box left out is a false detection, a truth box a miss."""
    if not 0.0 < min_iou <= 1.0:
        msg = f"min_iou must be in (0, 1], got {min_iou}"
        raise ValueError(msg)
    pairs = sorted(
        ((iou(t, d), i, j) for i, t in enumerate(truth) for j, d in enumerate(found)),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    return one_to_one((i, j) for score, i, j in pairs if score >= min_iou)


def one_to_one(ordered: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (truth index, found index) from candidates best first: a pair
    is kept unless its truth or its found box is taken already; sorted."""
    used_t: set[int] = set()
    used_d: set[int] = set()
    out = []
    for i, j in ordered:
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        out.append((i, j))
    return sorted(out)


__all__ = [
    "FRAME_H",
    "FRAME_W",
    "Scene",
    "SceneFish",
    "iou",
    "match_boxes",
    "one_to_one",
    "render_scene",
]
