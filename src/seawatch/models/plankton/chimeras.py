"""Near outliers made from the model's own in-distribution crops: chimeras of two taxa.

The drawn outliers of :mod:`.outliers` are organisms of no taxon; many look like nothing
real, so the scorer learns what is far from the training taxa. New taxa seen through the same
instrument are *near*: familiar textures, parts and outlines in a new arrangement (issue 24:
dinoflagellates and polychaete larvae land among the training taxa). Chimeras teach that
arrangement: each is built from two prepared crops of *different* classes of the training
split, so no generator is needed and the recipe works on a user's own labelled folder.

- ``halves``: crop A on one side of a random line through the centre, crop B on the other,
  joined by a soft seam (a 4-pixel ramp, so the seam is not a sharp edge to latch on to);
- ``mirror``: one half of crop A reflected onto the other (a symmetric outline the taxon
  does not have), under a soft seam;
- ``graft``: crop B shrunk to 40-70 % and blended onto crop A off its centre (a part of one
  taxon grown on the body of another).

Pairs are drawn with different labels and a similar background (median border grey level
within :data:`BACKGROUND_TOLERANCE`), so no chimera is told apart by its two backgrounds.
numpy + OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("halves", "mirror", "graft")
SEAM_PX = 4.0
BACKGROUND_TOLERANCE = 12.0
SAME_GREY = 3.0  # mean |chimera - crop A| under this: the chimera is crop A again


def _border_median(images: np.ndarray) -> np.ndarray:
    edge = np.concatenate(
        [images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1
    )
    return np.median(edge, axis=1)


def _side(size: int, angle: float, offset: float) -> np.ndarray:
    """Weight in [0, 1] of 'side A' of a line (``angle``, ``offset`` from the centre in
    pixels), a soft seam."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    signed = xx * np.cos(angle) + yy * np.sin(angle) - offset
    return np.clip(0.5 + signed / (2 * SEAM_PX), 0.0, 1.0)


def _graft(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = a.shape[0]
    scale = rng.uniform(0.4, 0.7)
    small = round(size * scale)
    part = cv2.resize(b, (small, small), interpolation=cv2.INTER_AREA).astype(np.float32)
    background = float(np.median(np.r_[b[0], b[-1], b[:, 0], b[:, -1]]))
    weight = np.clip(np.abs(part - background) / 40.0, 0.0, 1.0)
    weight = cv2.GaussianBlur(weight, (0, 0), 1.0)
    top, left = (int(rng.integers(0, size - small + 1)) for _ in range(2))
    out = a.astype(np.float32)
    window = out[top : top + small, left : left + small]
    out[top : top + small, left : left + small] = window * (1 - weight) + part * weight
    return out


def chimera(a: np.ndarray, b: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One chimera of the prepared crops ``a`` and ``b`` (same size, uint8)."""
    size = a.shape[0]
    if kind == "halves":
        w = _side(size, rng.uniform(0, 2 * np.pi), rng.uniform(-0.1, 0.1) * size)
        out = a.astype(np.float32) * w + b.astype(np.float32) * (1 - w)
    elif kind == "mirror":
        w = _side(size, 0.0, 0.0)  # the vertical axis; the turn picks which half is kept
        angle = rng.integers(0, 4)
        turned = np.rot90(a, angle).astype(np.float32)
        # reflect across the vertical axis, then blend: one half kept, its mirror on the other
        out = np.rot90(turned * w + turned[:, ::-1] * (1 - w), -angle)
    elif kind == "graft":
        out = _graft(a, b, rng)
    else:
        msg = f"unknown chimera kind {kind!r}; expected one of {KINDS}"
        raise ValueError(msg)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def chimera_set(
    images: np.ndarray, labels: np.ndarray, n: int, seed: int, kinds: tuple[str, ...] = KINDS
) -> np.ndarray:
    """``n`` chimeras (equal shares of ``kinds``) of crops with different labels."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        msg = "chimeras need crops of at least two classes"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    background = _border_median(images)
    out = np.empty((n, *images.shape[1:]), np.uint8)
    for i in range(n):
        a = int(rng.integers(len(images)))
        others = np.flatnonzero(
            (labels != labels[a]) & (np.abs(background - background[a]) <= BACKGROUND_TOLERANCE)
        )
        if not len(others):
            others = np.flatnonzero(labels != labels[a])
        b = int(rng.choice(others))
        kind = kinds[i % len(kinds)]
        out[i] = chimera(images[a], images[b], kind, rng)
        if kind == "mirror" and np.abs(out[i].astype(np.int16) - images[a]).mean() < SAME_GREY:
            # a mirror of a symmetric crop is the crop: graft instead
            out[i] = chimera(images[a], images[b], "graft", rng)
    return out


__all__ = ["KINDS", "chimera", "chimera_set"]
