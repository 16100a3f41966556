"""Generic local corruptions: the teacher's auxiliary pretraining task (where was it altered?).

No ImageNet weights can be downloaded here, so the teacher learns on a synthetic auxiliary
task instead: find, pixel by pixel, where an image was altered by *generic* operations that
know nothing of otoliths or of the defect generator used for evaluation (:mod:`._defects`):

- ``texture``: a foreign texture (a dead-leaves image) blended into an irregular region
  (DRAEM, Zavrtanik et al., ICCV 2021);
- ``paste``: a shifted piece of the same image pasted over a region (CutPaste, Li et al.,
  CVPR 2021);
- ``smooth``: a region replaced by a smoothed copy, with or without a colour cast;
- ``tint``: a colour cast in a region (per-channel gains);
- ``cut``: a region, or everything beyond a jagged line, filled with the median colour of
  the image's border (a piece taken away, the tray showing); only a band along the new
  edge is labelled, since whether a dark area held an object before cannot be told, but a
  cut edge can;
- ``strokes``: thin random polylines, dark or bright (scratches, hairs);
- ``spots``: small random dark or bright blobs;
- ``defocus``: a region mildly smoothed (ImageNet-C's defocus family, locally). Smoothing
  must change a pixel by twice :data:`CHANGE_LEVEL` to be labelled, so that naturally soft
  (shaded) outlines are not confused with smoothed ones.

Labelling a whole erased area, and defocusing the whole image, were tried and dropped: the
teacher cannot tell from local evidence whether a dark area held an object before or whether
an outline was already soft, so it hedged on every normal outline
(experiments/otolith/README.md).

The label is where the operation changed the (lightly smoothed) image by more than a few grey
levels: smoothing a flat background changes nothing and is not labelled. Fresh sensor noise is
added to every image afterwards, so the absence of noise is no cue. Torch for the batch
arithmetic, numpy and OpenCV for the shapes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

KINDS: tuple[str, ...] = (
    "texture",
    "paste",
    "smooth",
    "tint",
    "cut",
    "strokes",
    "spots",
    "defocus",
)
CLEAN_SHARE = 0.3  # images left unaltered (all-zero label)
CHANGE_LEVEL = 6.0  # grey levels (0..255) of change that count as altered
HARD_NEGATIVE_SHARE = 0.01  # unaltered pixels whose loss counts twice (the hardest 1 %)
FOREGROUND_LEVEL = 30.0  # grey levels from the tray colour that make a pixel the object


def region_mask(
    rng: np.random.Generator,
    size: int,
    centre: tuple[float, float] | None = None,
    radius: float | None = None,
) -> np.ndarray:
    """An irregular soft region (float32 0..1) covering about 1-20 % of the image.

    Thresholded low-frequency noise (as DRAEM's Perlin masks), restricted to one disc (random
    unless ``centre`` and ``radius`` are given) so the region is local, edges softened by a
    pixel.
    """
    cells = int(rng.integers(3, 9))
    noise = cv2.resize(
        rng.standard_normal((cells, cells)).astype(np.float32),
        (size, size),
        interpolation=cv2.INTER_CUBIC,
    )
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0.15, 0.85, 2) * size if centre is None else centre
    radius = size * rng.uniform(0.06, 0.3) if radius is None else radius
    disc = ((xs - cx) ** 2 + (ys - cy) ** 2) <= radius**2
    inside = noise[disc]
    level = np.quantile(inside, rng.uniform(0.1, 0.6)) if inside.size else 0.0
    mask = ((noise > level) & disc).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 0.7)


def half_plane_mask(
    rng: np.random.Generator, size: int, centre: tuple[float, float] | None = None
) -> np.ndarray:
    """Everything beyond a jagged straight line through ``centre`` or a random point
    (float32 0..1)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    psi = rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(0.25, 0.75, 2) * size if centre is None else centre
    along = (xs - cx) * math.cos(psi) + (ys - cy) * math.sin(psi)
    across = -(xs - cx) * math.sin(psi) + (ys - cy) * math.cos(psi)
    knots = np.cumsum(rng.normal(0, 0.8 * size / 128, 16))
    jag = np.interp(across, np.linspace(-size, size, 16), knots - knots.mean())
    return np.clip(0.5 + (along - jag), 0.0, 1.0).astype(np.float32)


def border_colour(image: torch.Tensor) -> torch.Tensor:
    """The median colour (3,) of the two outermost rows and columns: the tray."""
    border = torch.cat([image[:, :2].flatten(1), image[:, -2:].flatten(1)], 1)
    border = torch.cat([border, image[:, :, :2].flatten(1), image[:, :, -2:].flatten(1)], 1)
    return border.median(1).values


def foreground_mask(image: torch.Tensor, background: torch.Tensor) -> np.ndarray:
    """Pixels (bool S x S) that differ from the ``background`` colour (3,) by more than
    :data:`FOREGROUND_LEVEL` grey levels in some channel: the object, wherever it lies."""
    change = (_blur(image, 1.0) - background[:, None, None]).abs().amax(0)
    return (change > FOREGROUND_LEVEL).cpu().numpy()


def object_cut_mask(rng: np.random.Generator, foreground: np.ndarray) -> np.ndarray | None:
    """A cut that takes a piece off the object (float32 0..1), or None without an object.

    Half the time everything beyond a jagged line through a random object pixel (a large
    piece broken off); otherwise a small ragged bite centred on the object's outline, of
    radius 2-12 pixels at 128 px (a chip). A cut that misses the object teaches nothing.
    """
    size = foreground.shape[0]
    ys, xs = np.nonzero(foreground)
    if len(xs) < 16:
        return None
    if rng.random() < 0.5:
        i = int(rng.integers(len(xs)))
        return half_plane_mask(rng, size, centre=(float(xs[i]), float(ys[i])))
    inside = foreground.astype(np.uint8)
    edge = inside - cv2.erode(inside, np.ones((3, 3), np.uint8))
    ey, ex = np.nonzero(edge)
    if len(ex) == 0:
        return None
    i = int(rng.integers(len(ex)))
    radius = max(2.0, rng.uniform(2.0, 12.0) * size / 128)
    return region_mask(rng, size, centre=(float(ex[i]), float(ey[i])), radius=radius)


def boundary_band(region: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within ``width`` of the edge of a (soft) region, on both sides (S x S, 0/1)."""
    inside = (region > 0.5).float()[None, None]
    k = 2 * width + 1
    grown = F.max_pool2d(inside, k, stride=1, padding=width)
    shrunk = 1.0 - F.max_pool2d(1.0 - inside, k, stride=1, padding=width)
    return (grown - shrunk)[0, 0]


def stroke_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One to four thin random polylines (float32 0..1), one or two pixels wide."""
    canvas = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        x, y = rng.uniform(0.1, 0.9, 2) * size
        heading = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        for _ in range(int(rng.integers(4, max(5, size // 3)))):
            heading += rng.normal(0, 0.35)
            x += 1.5 * math.cos(heading)
            y += 1.5 * math.sin(heading)
            points.append((x, y))
        line = np.round(np.array(points) * 16).astype(np.int32)
        width = 1 if rng.random() < 0.75 else 2
        cv2.polylines(canvas, [line], False, 255, width, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255.0


def spot_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One to six small blobs (float32 0..1), 1-5 pixels across at 128 px (scaled with size)."""
    canvas = np.zeros((size, size), np.uint8)
    scale = size / 128
    for _ in range(int(rng.integers(1, 7))):
        centre = tuple(int(v) for v in rng.uniform(0.1, 0.9, 2) * size * 16)
        axes = tuple(int(v) for v in rng.uniform(0.6, 2.5, 2) * scale * 16)
        cv2.ellipse(canvas, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255.0


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of one C x H x W image (reflect padding)."""
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]


def corrupt_one(
    image: torch.Tensor,
    kind: str,
    rng: np.random.Generator,
    textures: torch.Tensor,
    object_cuts: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one corruption ``kind`` to a 3 x S x S float RGB image (0..255).

    Returns the altered image and the region it was applied to (S x S, 0..1). A ``cut`` goes
    through the object (:func:`object_cut_mask`) unless ``object_cuts`` is False: then it is
    a random line or region, wherever it falls.
    """
    if kind not in KINDS:
        msg = f"unknown corruption kind {kind!r}; expected one of {', '.join(KINDS)}"
        raise ValueError(msg)
    size = image.shape[-1]
    scale = size / 128  # blur widths below are for a 128 px input
    if kind == "strokes":
        mask = stroke_mask(rng, size)
    elif kind == "spots":
        mask = spot_mask(rng, size)
    elif kind == "cut":
        cut = None
        if object_cuts:
            cut = object_cut_mask(rng, foreground_mask(image, border_colour(image)))
        if cut is None:  # no object to cut: a random line or region, as for an empty tray
            cut = half_plane_mask(rng, size) if rng.random() < 0.5 else region_mask(rng, size)
        mask = cut
    else:
        mask = region_mask(rng, size)
    region = torch.from_numpy(mask).to(image.device)
    if kind == "texture":
        texture = textures[int(rng.integers(len(textures)))].float()
        source = torch.rot90(texture, int(rng.integers(4)), dims=(1, 2))
        region = region * float(rng.uniform(0.4, 1.0))
    elif kind == "paste":
        dy, dx = (int(v) for v in rng.integers(size // 8, size - size // 8, 2))
        source = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
        if rng.random() < 0.5:
            source = source.flip(2)
    elif kind in ("smooth", "defocus"):
        sigma = rng.uniform(1.5, 5.0) if kind == "smooth" else rng.uniform(1.0, 2.5)
        source = _blur(image, float(sigma * scale))
        if kind == "smooth" and rng.random() < 0.5:
            source = (
                source * torch.tensor(rng.uniform(0.8, 1.2, 3), dtype=image.dtype)[:, None, None]
            )
    elif kind == "tint":
        gains = torch.tensor(rng.uniform(0.7, 1.3, 3), dtype=image.dtype)
        source = image * gains[:, None, None]
    elif kind == "cut":
        source = border_colour(image)[:, None, None].expand_as(image)  # the surroundings
    elif rng.random() < 0.6:  # strokes, spots: darker
        source = image * float(rng.uniform(0.15, 0.85))
    else:  # or bright
        source = torch.full_like(image, float(rng.uniform(150, 255)))
    altered = image * (1.0 - region) + source * region
    return altered.clamp(0, 255), region


def corrupt_batch(
    images: torch.Tensor,
    rng: np.random.Generator,
    textures: torch.Tensor,
    kinds: tuple[str, ...] = KINDS,
    object_cuts: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a batch (N x 3 x S x S float RGB 0..255); return it and its labels (N x 1 x S x S).

    About :data:`CLEAN_SHARE` of the images stay unaltered; every image gets fresh sensor
    noise. A pixel is labelled 1 where it lies in the applied region and the lightly smoothed
    image changed there by more than :data:`CHANGE_LEVEL` grey levels (twice that for
    smoothing; dilated by a pixel); for a ``cut``, a band along the new edge.
    """
    out = images.clone()
    labels = torch.zeros(len(images), 1, *images.shape[-2:])
    for i in range(len(images)):
        if rng.random() < CLEAN_SHARE:
            continue
        kind = kinds[int(rng.integers(len(kinds)))]
        altered, region = corrupt_one(images[i], kind, rng, textures, object_cuts)
        change = (_blur(altered, 0.8) - _blur(images[i], 0.8)).abs().amax(0)
        level = CHANGE_LEVEL * (2.0 if kind in ("smooth", "defocus") else 1.0)
        changed = (change > level).float()[None, None]
        if kind == "cut":  # the new edge, both sides, where the cut took something away
            band = boundary_band(region, max(2, images.shape[-1] // 64))
            near = F.max_pool2d(changed, 7, stride=1, padding=3)[0, 0]
            labels[i, 0] = band * near
        else:
            changed = F.max_pool2d(changed, 3, stride=1, padding=1)[0, 0]
            labels[i, 0] = changed * (region > 0.2).float()
        out[i] = altered
    sigma = torch.from_numpy(rng.uniform(0.5, 2.5, (len(images), 1, 1, 1)).astype(np.float32))
    noise = torch.from_numpy(rng.standard_normal(images.shape, dtype=np.float32))
    return (out + noise * sigma).clamp(0, 255), labels


def localisation_loss(
    logits: torch.Tensor, target: torch.Tensor, hard_share: float = HARD_NEGATIVE_SHARE
) -> torch.Tensor:
    """Area-balanced BCE plus hard negatives: each altered image's positives weigh as much
    as its negatives, and the ``hard_share`` of each image's unaltered pixels with the
    highest loss count once more.

    A two-pixel spot then counts as much as a large pasted region, so small alterations are
    not drowned out; and a teacher that fires on normal structure (every outline, the core)
    pays for it, where averaged over the whole image a few false alarms would cost nothing
    (lab: teacher heads 0.889 -> 0.911 test AUROC, experiments/otolith/README.md).
    ``logits`` and ``target`` (soft, 0..1) are N x 1 x H x W.
    """
    positive = target.flatten(1)
    negative = 1.0 - positive
    log_p = F.logsigmoid(logits).flatten(1)
    log_not_p = F.logsigmoid(-logits).flatten(1)
    pos_area = positive.sum(1)
    pos_loss = -(positive * log_p).sum(1) / pos_area.clamp(min=1e-6)
    neg_loss = -(negative * log_not_p).sum(1) / negative.sum(1).clamp(min=1e-6)
    has_pos = (pos_area > 1e-3).float()
    loss = (has_pos * pos_loss).sum() / has_pos.sum().clamp(min=1.0) + neg_loss.mean()
    if hard_share <= 0:
        return loss
    hardest = max(1, int(hard_share * negative.shape[1]))
    return loss + (negative * -log_not_p).topk(hardest, dim=1).values.mean()


__all__ = [
    "CHANGE_LEVEL",
    "CLEAN_SHARE",
    "FOREGROUND_LEVEL",
    "HARD_NEGATIVE_SHARE",
    "KINDS",
    "border_colour",
    "boundary_band",
    "corrupt_batch",
    "corrupt_one",
    "foreground_mask",
    "half_plane_mask",
    "localisation_loss",
    "object_cut_mask",
    "region_mask",
    "spot_mask",
    "stroke_mask",
]
