"""Model-based cutting of full frames: the network's maps -> instances -> objects (numpy +
OpenCV; the network itself runs on the inference thread, see the plankton head).

1. **Input** (:func:`model_input`): the frame's flat-field corrected signal (the same one the
   threshold cuts, :func:`~seawatch.ingest.segment.frame_signal`), shrunk by
   :data:`MODEL_SCALE` and padded to a multiple of the network's stride.
2. **Maps**: the network returns, per pixel, the probability of foreground and its
   **centre-ness**: the distance to the edge of its object (another object's edge included)
   over that object's largest, so each object peaks near 1 inside and two touching objects
   are separated by a valley.
3. **Instances** (:func:`instances`): cores are the regions of centre-ness over
   ``merge_level`` that peak over ``core_level`` (hysteresis: a lobed object stays whole);
   each core is an instance; every other foreground pixel joins the nearest core, a
   foreground blob with no core is an instance of its own, and holes are filled.
4. **Objects** (:func:`objects_from_maps`): the label map is enlarged to the frame (labels by
   nearest neighbour, the foreground probability bilinearly, so outlines keep sub-pixel
   detail), objects under the minimum ESD are dropped, and each is measured from its filled
   mask and cropped from the frame, as :func:`~seawatch.ingest.segment.segment_full` does.
5. **Quality** (:func:`quality_windows`): a square window around each instance (signal,
   both maps, its mask, its size) for the quality network, which predicts the instance's IoU
   with the true object; the frame's score is their mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.contracts.errors import FrameError
from seawatch.contracts.objects import SegmentedObject
from seawatch.ingest.morphometrics import measure_mask
from seawatch.ingest.segment import SegmentParams, frame_signal

MODEL_SCALE = 0.5  # the network sees the frame at half its resolution
FOREGROUND, CENTRE = 0, 1  # the channels of the network's output: foreground, centre-ness
QUALITY_SIZE = 32  # side of a quality window, px
QUALITY_CHANNELS = 6  # signal, foreground, centre-ness, mask, log area, fill share
SIGNAL_UNIT = 1.0 / 64.0  # signal (0..255, mostly < 64 on objects) -> network units
_MIN_CORE = 3  # px (network scale): a smaller core is noise; its pixels join a neighbour
CORE_LEVEL, MERGE_LEVEL = 0.5, 0.3  # centre-ness: a core's peak, and the ridge that joins


@dataclass(frozen=True)
class ModelInput:
    """A frame's network input (uint8, H' x W', padded) and where the frame lies in it."""

    signal: np.ndarray
    height: int  # the frame's size at the network's scale (before padding)
    width: int


def model_input(gray8: np.ndarray, params: SegmentParams, stride: int) -> ModelInput:
    """The network's input of one full 8-bit frame: its signal at :data:`MODEL_SCALE`,
    zero-padded on the right and bottom to multiples of ``stride``."""
    signal = frame_signal(gray8, params)
    h, w = gray8.shape
    sh, sw = max(1, round(h * MODEL_SCALE)), max(1, round(w * MODEL_SCALE))
    small = cv2.resize(signal, (sw, sh), interpolation=cv2.INTER_AREA)
    ph, pw = -sh % stride, -sw % stride
    if ph or pw:
        small = cv2.copyMakeBorder(small, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
    return ModelInput(small, sh, sw)


def instances(
    maps: np.ndarray,
    *,
    fg_level: float = 0.5,
    core_level: float = CORE_LEVEL,
    merge_level: float = MERGE_LEVEL,
) -> np.ndarray:
    """Label map (int32, 0 = background) of the instances in 2 x H x W maps.

    Cores by hysteresis: the connected regions of centre-ness over ``merge_level`` that
    reach ``core_level`` somewhere. Two peaks joined by a ridge over ``merge_level`` (the
    lobes of one copepod, the cells of one chain) are one object; two touching objects,
    with a valley between them, are two.
    """
    fg = maps[FOREGROUND] > fg_level
    low = (fg & (maps[CENTRE] > merge_level)).astype(np.uint8)
    # (connectedComponents and a bincount: OpenCV's WithStats variant costs six times more)
    n, cores = cv2.connectedComponents(low, connectivity=4)
    keep = np.zeros(n, bool)
    keep[np.unique(cores[fg & (maps[CENTRE] > core_level)])] = True
    keep[np.bincount(cores.ravel(), minlength=n) < _MIN_CORE] = False
    keep[0] = False
    if not keep[1:].all():
        remap = np.zeros(n, np.int32)
        remap[keep] = np.arange(1, int(keep.sum()) + 1)
        cores = remap[cores]
    labels = cores.astype(np.int32)
    rest = fg & (labels == 0)
    if not rest.any():
        return fill_instances(labels)
    if labels.any():
        # Each remaining foreground pixel takes the label of the nearest core pixel.
        _, nearest = cv2.distanceTransformWithLabels(
            (labels == 0).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        owners = labels[labels > 0]  # the zero pixels of (labels == 0), in scan order
        joined = owners[nearest[rest] - 1]
        # ... unless its blob holds no core at all: then that blob is an instance itself.
        _, blobs = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        cored = np.unique(blobs[labels > 0])
        orphan = ~np.isin(blobs[rest], cored)
        joined[orphan] = 0
        labels[rest] = joined
        rest = fg & (labels == 0)
    if rest.any():
        _, orphans = cv2.connectedComponents(rest.astype(np.uint8), connectivity=8)
        base = int(labels.max())
        labels[rest] = orphans[rest] + base
    return fill_instances(labels)


def fill_instances(labels: np.ndarray) -> np.ndarray:
    """Each instance with the background its outline encloses (a bubble's clear centre, a
    ring-shaped diatom) filled in, as the morphometrics count it."""
    for label, (x, y, w, h) in boxes(labels).items():
        window = labels[y : y + h, x : x + w]
        filled, _ = fill_holes((window == label).astype(np.uint8))
        window[(filled > 0) & (window == 0)] = label
    return labels


def enlarge(labels: np.ndarray, foreground: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A network-scale label map at the frame's ``shape``: labels by nearest neighbour,
    kept where the bilinearly enlarged foreground probability is over one half."""
    h, w = shape
    big = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    fg = cv2.resize(foreground, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    big[~fg] = 0
    return big


def boxes(labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Tight (x, y, w, h) box of every label > 0."""
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    if not len(where):
        return {}
    ids = flat[where]
    order = np.argsort(ids, kind="stable")
    ids, where = ids[order], where[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ys, xs = np.divmod(where, labels.shape[1])
    out = {}
    for start, end in zip(starts, [*starts[1:], len(ids)], strict=True):
        x0, x1 = int(xs[start:end].min()), int(xs[start:end].max())
        y0, y1 = int(ys[start:end].min()), int(ys[start:end].max())
        out[int(ids[start])] = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    return out


def fill_holes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask with its holes filled, and its outline points."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    outline = np.concatenate(contours) if contours else np.empty((0, 1, 2), np.int32)
    return filled, outline


def objects_from_labels(
    gray8: np.ndarray,
    labels: np.ndarray,
    params: SegmentParams,
    pixel_size_um: float | None,
) -> tuple[list[SegmentedObject], list[int]]:
    """Objects of a frame-size label map, in reading order, with the label of each; objects
    under the minimum ESD are dropped. Raises FrameError over ``max_objects``."""
    min_area = params.min_area_px(pixel_size_um)
    found = []
    for label, (x, y, w, h) in boxes(labels).items():
        mask, outline = fill_holes((labels[y : y + h, x : x + w] == label).astype(np.uint8))
        morph = measure_mask(mask, pixel_size_um, outline=outline)
        if morph.area_px >= min_area and morph.area_px > 0:
            found.append((y, x, label, (x, y, w, h), morph))
    if len(found) > params.max_objects:
        msg = (
            f"more than max_objects={params.max_objects} objects in the frame; it is likely "
            "noise or a segmentation model for other frames; fix those or raise max_objects"
        )
        raise FrameError(stage="segment", reason=msg, field="objects")
    found.sort(key=lambda f: (f[0], f[1]))
    objects, kept = [], []
    fh, fw = gray8.shape
    pad = params.pad_px
    for index, (_, _, label, (x, y, w, h), morph) in enumerate(found):
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(fw, x + w + pad), min(fh, y + h + pad)
        image = gray8[y0:y1, x0:x1].copy()
        objects.append(SegmentedObject(index, (x0, y0, x1 - x0, y1 - y0), image, morph))
        kept.append(label)
    return objects, kept


def objects_from_maps(
    gray8: np.ndarray,
    maps: np.ndarray,
    params: SegmentParams,
    pixel_size_um: float | None,
    *,
    core_level: float = CORE_LEVEL,
    merge_level: float = MERGE_LEVEL,
) -> tuple[list[SegmentedObject], np.ndarray, list[int]]:
    """Objects of one frame from its network maps (2 x H' x W', padding included), split at
    the model's centre-ness levels (its card's ``core`` and ``merge``): the objects, the
    network-scale label map and the label of each object."""
    small, big = label_maps(maps, gray8.shape, core_level=core_level, merge_level=merge_level)
    objects, kept = objects_from_labels(gray8, big, params, pixel_size_um)
    return objects, small, kept


def split_levels(
    thresholds: dict[str, float], default: tuple[float, float] = (CORE_LEVEL, MERGE_LEVEL)
) -> tuple[float, float]:
    """A network's centre-ness levels (core, merge) from its card's ``thresholds``: the split
    of touching objects chosen for that network, else ``default``."""
    return (
        float(thresholds.get("core", default[0])),
        float(thresholds.get("merge", default[1])),
    )


def label_maps(
    maps: np.ndarray,
    shape: tuple[int, int],
    *,
    core_level: float = CORE_LEVEL,
    merge_level: float = MERGE_LEVEL,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's instance labels from its network maps (padding included), split at the
    given centre-ness levels: at the network's scale, and enlarged to the frame's ``shape``."""
    h, w = shape
    sh, sw = max(1, round(h * MODEL_SCALE)), max(1, round(w * MODEL_SCALE))
    maps = maps[:, :sh, :sw]
    small = instances(maps, core_level=core_level, merge_level=merge_level)
    return small, enlarge(small, np.ascontiguousarray(maps[FOREGROUND]), (h, w))


def _window(plane: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side``-square of ``plane`` at (x0, y0), zeros outside, resized to the window."""
    h, w = plane.shape
    canvas = np.zeros((side, side), np.float32)
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if xb > xa and yb > ya:
        canvas[ya - y0 : yb - y0, xa - x0 : xb - x0] = plane[ya:yb, xa:xb]
    shrink = cv2.INTER_AREA if side > QUALITY_SIZE else cv2.INTER_LINEAR
    return cv2.resize(canvas, (QUALITY_SIZE, QUALITY_SIZE), interpolation=shrink)


def quality_windows(
    signal: np.ndarray, maps: np.ndarray, labels: np.ndarray, ids: list[int]
) -> np.ndarray:
    """The quality network's inputs for instances ``ids`` of a network-scale label map
    (N x 6 x S x S float32): the signal in network units, foreground, centre-ness and the
    instance's mask in a square window around it (a quarter wider than the instance), and
    two constant planes, log(1 + area) / 8 and the share of the window the mask fills (what
    resizing the window would otherwise hide)."""
    n = len(ids)
    windows = np.zeros((n, QUALITY_CHANNELS, QUALITY_SIZE, QUALITY_SIZE), np.float32)
    if not n:
        return windows
    h, w = labels.shape
    planes = (
        signal[:h, :w].astype(np.float32) * SIGNAL_UNIT,
        maps[FOREGROUND, :h, :w],
        maps[CENTRE, :h, :w],
    )
    where = boxes(labels)
    for k, label in enumerate(ids):
        x, y, bw, bh = where.get(label, (0, 0, 1, 1))
        side = math.ceil(max(bw, bh) * 1.25) + 4
        x0, y0 = round(x + bw / 2.0 - side / 2.0), round(y + bh / 2.0 - side / 2.0)
        for c, plane in enumerate(planes):
            windows[k, c] = _window(plane, x0, y0, side)
        xa, ya = max(0, x0), max(0, y0)
        mask = (labels[ya : y0 + side, xa : x0 + side] == label).astype(np.float32)
        full = np.zeros((side, side), np.float32)
        full[ya - y0 : ya - y0 + mask.shape[0], xa - x0 : xa - x0 + mask.shape[1]] = mask
        windows[k, 3] = _window(full, 0, 0, side)
        area = float(mask.sum())
        windows[k, 4] = math.log1p(area) / 8.0
        windows[k, 5] = area / float(side * side)
    return windows


def frame_score(predicted_iou: np.ndarray) -> float | None:
    """A frame's segmentation quality: the mean predicted IoU of its instances (None
    without any)."""
    return round(float(np.mean(predicted_iou)), 4) if len(predicted_iou) else None


__all__ = [
    "CENTRE",
    "CORE_LEVEL",
    "FOREGROUND",
    "MERGE_LEVEL",
    "MODEL_SCALE",
    "QUALITY_CHANNELS",
    "QUALITY_SIZE",
    "SIGNAL_UNIT",
    "ModelInput",
    "boxes",
    "enlarge",
    "fill_holes",
    "fill_instances",
    "frame_score",
    "instances",
    "label_maps",
    "model_input",
    "objects_from_labels",
    "objects_from_maps",
    "quality_windows",
    "split_levels",
]
