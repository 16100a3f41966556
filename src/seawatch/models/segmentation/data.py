"""Training tiles: hard frames at the network's scale with their targets (numpy + OpenCV).

A tile is a :func:`~seawatch.models.segmentation.synthetic.render_hard_frame` frame (512 px a
side at the daemon's resolution, so 256 px for the network), half of them through a JPEG
round trip as in-situ cameras send them, a third dark-field. Its targets are the true
instances at the network's scale: **foreground** (any instance) and **centre-ness** (the
distance to the instance's edge over its largest: a peak in each object, a valley where two
touch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from seawatch.ingest.segment import SegmentParams
from seawatch.ingest.segment_model import MODEL_SCALE, model_input
from seawatch.models.segmentation.synthetic import Hardness, render_hard_frame

STRIDE = 32  # the inputs' sides are multiples of every SegNet's stride used here


@dataclass
class Tiles:
    """N tiles: network inputs (uint8 N x H x W), true labels at that scale (int32), and,
    when kept, the full-resolution frames and labels (for scoring at the daemon's scale)."""

    inputs: np.ndarray
    labels: np.ndarray
    images: list[np.ndarray] | None = None
    full_labels: list[np.ndarray] | None = None
    touching: list[tuple[bool, ...]] | None = None
    taxa: list[tuple[str, ...]] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, index: np.ndarray | list[int]) -> Tiles:
        """The tiles at ``index``."""
        index = list(np.asarray(index).tolist())

        def pick(values):
            return None if values is None else [values[i] for i in index]

        return Tiles(
            self.inputs[index],
            self.labels[index],
            pick(self.images),
            pick(self.full_labels),
            pick(self.touching),
            pick(self.taxa),
        )


def jpeg(image: np.ndarray, quality: int = 90) -> np.ndarray:
    """An 8-bit image after a JPEG round trip."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def shrink_labels(labels: np.ndarray) -> np.ndarray:
    """A full-resolution label map at the network's scale (nearest neighbour)."""
    h, w = labels.shape
    size = (max(1, round(w * MODEL_SCALE)), max(1, round(h * MODEL_SCALE)))
    return cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)


def make_tiles(
    n: int,
    seed: int,
    *,
    size: int = 512,
    objects: tuple[int, int] = (4, 13),
    dark_fraction: float = 0.3,
    jpeg_fraction: float = 0.5,
    hardness: Hardness | None = None,
    keep_full: bool = False,
    params: SegmentParams | None = None,
    progress: Callable[[int], object] | None = None,
) -> Tiles:
    """``n`` tiles of ``size`` px (daemon resolution) from the seed ``seed``."""
    if n < 1 or size % (STRIDE * 2):
        msg = f"need n >= 1 and a size that is a multiple of {STRIDE * 2}; got {n}, {size}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    params = params or SegmentParams()
    inputs, labels, images, full, touching, taxa = [], [], [], [], [], []
    for _ in range(n):
        frame = render_hard_frame(
            rng,
            width=size,
            height=size,
            n_objects=int(rng.integers(*objects)),
            dark_field=bool(rng.random() < dark_fraction),
            hardness=hardness,
        )
        image = jpeg(frame.image) if rng.random() < jpeg_fraction else frame.image
        inputs.append(model_input(image, params, STRIDE).signal)
        labels.append(shrink_labels(frame.labels))
        if keep_full:
            images.append(image)
            full.append(frame.labels)
        touching.append(frame.touching)
        taxa.append(frame.taxa)
        if progress is not None:
            progress(1)
    return Tiles(
        np.stack(inputs),
        np.stack(labels),
        images if keep_full else None,
        full if keep_full else None,
        touching,
        taxa,
    )


def centre_map(labels: np.ndarray) -> np.ndarray:
    """Centre-ness of every instance (float32 0..1): each pixel's distance to the edge of its
    instance, over the instance's largest. Where two instances touch, the edge of each runs
    between them, so the map has a valley there and a peak in each."""
    from seawatch.ingest.segment_model import boxes

    out = np.zeros(labels.shape, np.float32)
    for label, (x, y, w, h) in boxes(labels).items():
        window = labels[y : y + h, x : x + w]
        inside = window == label
        mask = cv2.copyMakeBorder(inside.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT)
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)[1:-1, 1:-1]
        dist /= max(float(dist.max()), 1e-6)
        target = out[y : y + h, x : x + w]
        target[inside] = np.maximum(target[inside], dist[inside])
    return out


def targets(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground (uint8 0/1) and centre-ness (uint8 0..255) targets of label maps
    (N x H x W or H x W)."""
    stack = labels if labels.ndim == 3 else labels[None]
    fg = (stack > 0).astype(np.uint8)
    centre = np.stack([np.round(centre_map(lab) * 255) for lab in stack]).astype(np.uint8)
    return (fg, centre) if labels.ndim == 3 else (fg[0], centre[0])


__all__ = ["STRIDE", "Tiles", "centre_map", "jpeg", "make_tiles", "shrink_labels", "targets"]
