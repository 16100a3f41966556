"""Synthetic training, validation and test sets for the plankton classifier.

Each set mixes single-object ROI renders with objects that the daemon's own segmentation cuts
from synthetic full frames (what the pipeline serves for full frames). The three splits come
from different seeds, so the test set is never seen by training or calibration. The ROI part
of the training split can be long-tailed (``imbalance`` = most / least frequent class), as
real plankton catches are; validation and test stay class-balanced so macro-F1 weighs rare
taxa like common ones. numpy and OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seawatch.models.plankton.datasets import LabelledSet
from seawatch.models.plankton.synthetic import (
    TAXA,
    TAXON_FREQUENCIES,
    make_dataset,
    make_segmented_dataset,
)

SPLIT_SEED_OFFSETS = {"train": 0, "validation": 1_000_003, "test": 3_000_017}
SEGMENTED_SEED_OFFSET = 2_000_029  # segmented full frames: yet another stream per split
MODEL_SEGMENTED_SEED_OFFSET = 5_000_041  # frames cut by the segmentation model (issue 27)
MODEL_SEGMENTED_SHARE = 0.3  # with a segmentation model: crops it cuts, per class, / n_per_class
SEGMENTED_SHARE = 0.4  # share of the samples cut from full frames (the rest: ROI renders)
CROPS_PER_FRAME = 30  # segmented crops one 1280 x 960 frame yields, on average (measured)
SEGMENTED = {"dark_fraction": 0.5, "jpeg_fraction": 0.5, "min_iou": 0.3, "min_inside": 0.8}
MAX_PARTS = 2
SOURCES = ("roi", "segmented", "model_segmented")

Advance = Callable[[str, int, int], object]  # (label, total, done-now) progress callback


def long_tail_counts(n_per_class: int, imbalance: float) -> dict[str, int]:
    """Per-taxon sample counts averaging ``n_per_class``, most/least frequent = ``imbalance``.

    Taxa are ranked by their natural frequency (:data:`TAXON_FREQUENCIES`) and the counts fall
    geometrically along that rank, the shape of real plankton catches.
    """
    if imbalance < 1.0:
        msg = f"imbalance must be >= 1 (most / least frequent class), got {imbalance}"
        raise ValueError(msg)
    ranked = sorted(TAXA, key=lambda t: -TAXON_FREQUENCIES[t])
    weights = imbalance ** (-np.arange(len(ranked)) / max(1, len(ranked) - 1))
    counts = np.maximum(1, np.round(weights / weights.mean() * n_per_class)).astype(int)
    return dict(zip(ranked, counts.tolist(), strict=True))


def synthetic_split(
    split: str,
    n_per_class: int,
    *,
    seed: int,
    size: int,
    segmented_share: float = SEGMENTED_SHARE,
    imbalance: float = 1.0,
    segmentation_model: Path | None = None,
    model_segmented_share: float = 0.0,
    advance: Advance | None = None,
    model_counts: dict[str, int] | None = None,
) -> tuple[LabelledSet, dict[str, int]]:
    """One split (``train``, ``validation`` or ``test``) and its segmentation counts.

    With ``segmentation_model`` and ``model_segmented_share`` > 0, about ``n_per_class *
    model_segmented_share`` more crops per class come from hard and easy frames cut by that
    network (:mod:`.model_segmented`; source ``model_segmented``, counts in ``model_counts``).
    """
    base = seed + SPLIT_SEED_OFFSETS[split]
    rng = np.random.default_rng(base)
    counts = long_tail_counts(max(1, round(n_per_class * (1.0 - segmented_share))), imbalance)
    total = sum(counts.values())
    label = f"{split} ROIs"
    parts_x, parts_y = [], []
    for taxon_index, taxon in enumerate(TAXA):
        x, _ = make_dataset(
            counts[taxon],
            rng,
            size=size,
            taxa=[taxon],
            progress=None if advance is None else lambda n, lbl=label: advance(lbl, total, n),
        )
        parts_x.append(x)
        parts_y.append(np.full(len(x), taxon_index, np.int64))
    order = rng.permutation(total)
    x_roi, y_roi = np.concatenate(parts_x)[order], np.concatenate(parts_y)[order]
    seg_counts: dict[str, int] = {}
    n_frames = 0
    if segmented_share > 0:
        n_frames = max(1, math.ceil(n_per_class * len(TAXA) * segmented_share / CROPS_PER_FRAME))
    x_seg = np.zeros((0, size, size), np.uint8)
    y_seg = np.zeros(0, np.int64)
    if n_frames:
        label = f"{split} full frames"
        x_seg, y_seg = make_segmented_dataset(
            n_frames,
            np.random.default_rng(base + SEGMENTED_SEED_OFFSET),
            size=size,
            **SEGMENTED,
            max_parts=MAX_PARTS,
            counts=seg_counts,
            progress=None if advance is None else lambda n: advance(label, n_frames, n),
        )
    x_model, y_model = _model_segmented(
        split,
        n_per_class,
        base,
        size,
        segmentation_model,
        model_segmented_share,
        advance,
        model_counts,
    )
    if segmentation_model is None or model_segmented_share <= 0:
        sources: tuple[str, ...] = SOURCES[:2]
    else:
        sources = SOURCES
    lengths = [len(y_roi), len(y_seg), len(y_model)][: len(sources)]
    source = np.repeat(np.arange(len(sources), dtype=np.int64), lengths)
    data = LabelledSet(
        np.concatenate([x_roi, x_seg, x_model]),
        np.concatenate([y_roi, y_seg, y_model]),
        list(TAXA),
        source,
        sources,
    )
    return data, seg_counts


def _model_segmented(
    split: str,
    n_per_class: int,
    base: int,
    size: int,
    model_dir: Path | None,
    share: float,
    advance: Advance | None,
    counts: dict[str, int] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The crops the segmentation model cuts for one split (none without a model)."""
    if model_dir is None or share <= 0:
        return np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64)
    from seawatch.models.plankton.model_segmented import model_segmented_dataset

    n_frames = max(1, math.ceil(n_per_class * len(TAXA) * share / CROPS_PER_FRAME))
    label = f"{split} model-cut frames"
    return model_segmented_dataset(
        n_frames,
        base + MODEL_SEGMENTED_SEED_OFFSET,
        model_dir,
        size=size,
        counts=counts,
        progress=None if advance is None else lambda n: advance(label, n_frames, n),
    )


def model_segmented_args(summary: dict) -> dict:
    """The ``synthetic_split`` arguments that regenerate a card's model-cut crops (from its
    ``training.data``; none: {})."""
    used = summary.get("model_segmented")
    if not used:
        return {}
    return {
        "segmentation_model": Path(used["model_dir"]),
        "model_segmented_share": float(used["share"]),
    }


__all__ = [
    "MAX_PARTS",
    "MODEL_SEGMENTED_SEED_OFFSET",
    "MODEL_SEGMENTED_SHARE",
    "SEGMENTED",
    "SEGMENTED_SEED_OFFSET",
    "SEGMENTED_SHARE",
    "SOURCES",
    "SPLIT_SEED_OFFSETS",
    "long_tail_counts",
    "model_segmented_args",
    "synthetic_split",
]
