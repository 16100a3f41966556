"""Labelling objects that the live segmentation cuts from a synthetic full frame (numpy only).

:func:`seawatch.models.plankton.synthetic.make_segmented_dataset` renders full frames with
known boxes, runs the daemon's own :func:`seawatch.ingest.segment.segment_full` on them and
gives each segmented object the taxon of the ground-truth box it matches. The rule (tight
boxes, i.e. the segmented box without its padding):

- **whole**: the best IoU with a ground-truth box is at least ``min_iou``;
- **part**: otherwise, at least ``min_inside`` of the object's box lies inside one
  ground-truth box (a piece of an object the threshold broke up: a diatom cell of a chain,
  a flock of marine snow, a copepod body without its faint antennae). At most ``max_parts``
  parts, the largest, are kept per ground-truth object so fragmenting taxa do not flood the set;
- **dropped**: neither (noise, merged neighbours, a piece straddling two boxes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Counters kept by :func:`match_objects` (and summed by ``make_segmented_dataset``).
COUNT_KEYS = (
    "frames",
    "truth_objects",
    "truth_found",
    "segmented",
    "whole",
    "parts",
    "parts_over_cap",
    "dropped",
)


def match_rule(min_iou: float, min_inside: float | None, max_parts: int) -> str:
    """The matching rule in words, for model cards."""
    rule = f"whole: IoU of the tight segmented box with a ground-truth box >= {min_iou:g}"
    if min_inside is None:
        return rule + "; anything else dropped"
    return (
        f"{rule}; part: else >= {min_inside:.0%} of the tight box inside one ground-truth box "
        f"(at most {max_parts} largest parts per ground-truth object); anything else dropped"
    )


def tight_boxes(
    bboxes: Sequence[tuple[int, int, int, int]], pad: int, shape: tuple[int, int]
) -> np.ndarray:
    """Segmented boxes (x, y, w, h, padded by ``pad`` and clipped) as tight x0, y0, x1, y1.

    Where the padded box touches the frame edge the padding is unknown (it was clipped) and
    none is removed on that side.
    """
    h, w = shape
    b = np.asarray(bboxes, np.float64).reshape(-1, 4)
    x0, y0 = b[:, 0], b[:, 1]
    x1, y1 = x0 + b[:, 2], y0 + b[:, 3]
    out = np.stack(
        [
            np.where(x0 > 0, x0 + pad, x0),
            np.where(y0 > 0, y0 + pad, y0),
            np.where(x1 < w, x1 - pad, x1),
            np.where(y1 < h, y1 - pad, y1),
        ],
        axis=1,
    )
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out


def match_objects(
    bboxes: Sequence[tuple[int, int, int, int]],
    truth: Sequence[tuple[int, int, int, int]],
    *,
    pad: int,
    shape: tuple[int, int],
    min_iou: float = 0.3,
    min_inside: float | None = 0.8,
    max_parts: int = 2,
) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """Match segmented boxes to ground-truth boxes (x, y, w, h) of one frame.

    Returns ``(object index, truth index)`` pairs in object order, and the frame's counts
    (see :data:`COUNT_KEYS`).
    """
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts |= {"frames": 1, "truth_objects": len(truth), "segmented": len(bboxes)}
    if not len(bboxes) or not len(truth):
        counts["dropped"] = len(bboxes)
        return [], counts
    seg = tight_boxes(bboxes, pad, shape)
    t = np.asarray(truth, np.float64).reshape(-1, 4)
    t = np.stack([t[:, 0], t[:, 1], t[:, 0] + t[:, 2], t[:, 1] + t[:, 3]], axis=1)
    ix = np.minimum(seg[:, None, 2], t[None, :, 2]) - np.maximum(seg[:, None, 0], t[None, :, 0])
    iy = np.minimum(seg[:, None, 3], t[None, :, 3]) - np.maximum(seg[:, None, 1], t[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    seg_area = (seg[:, 2] - seg[:, 0]) * (seg[:, 3] - seg[:, 1])
    truth_area = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    iou = inter / (seg_area[:, None] + truth_area[None, :] - inter)
    inside = inter / seg_area[:, None]
    pairs: list[tuple[int, int]] = []
    parts: dict[int, list[tuple[float, int]]] = {}
    for i in range(len(seg)):
        j = int(iou[i].argmax())
        if iou[i, j] >= min_iou:
            pairs.append((i, j))
            counts["whole"] += 1
            continue
        k = int(inside[i].argmax())
        if min_inside is not None and inside[i, k] >= min_inside:
            parts.setdefault(k, []).append((float(seg_area[i]), i))
        else:
            counts["dropped"] += 1
    for k, found in parts.items():
        found.sort(key=lambda p: (-p[0], p[1]))
        pairs += [(i, k) for _, i in found[:max_parts]]
        counts["parts"] += min(len(found), max_parts)
        counts["parts_over_cap"] += max(0, len(found) - max_parts)
    pairs.sort()
    counts["truth_found"] = len({k for _, k in pairs})
    return pairs, counts


def shuffled_crops(
    rng: np.random.Generator,
    crops: list[np.ndarray],
    labels: list[int],
    size: int,
    total: dict[str, int],
    counts: dict[str, int] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Add a draw's `total` into `counts`, then stack its crops and labels in a shuffled order."""
    if counts is not None:
        for key, value in total.items():
            counts[key] = counts.get(key, 0) + value
    order = rng.permutation(len(labels))
    images = np.stack(crops)[order] if crops else np.empty((0, size, size), np.uint8)
    return images, np.asarray(labels, np.int64)[order]


__all__ = ["COUNT_KEYS", "match_objects", "match_rule", "shuffled_crops", "tight_boxes"]
