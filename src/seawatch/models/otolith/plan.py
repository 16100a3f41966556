"""What one otolith training run uses: its plan (sizes, schedules), data seeds and training set.

Shared by the detector's training (:mod:`.train`) and the standalone teacher pretraining
(:mod:`.teacher_artifact`), so that a pretrained teacher saw exactly the images, at the
architecture, that its students are distilled on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seawatch.models.otolith._textures import dead_leaves
from seawatch.models.otolith.head import prepare_otolith
from seawatch.models.otolith.network import DEFAULT_WIDTHS
from seawatch.models.otolith.synthetic import make_dataset

#: Seed offsets of the data sets (added to the run's seed).
OFFSETS = {
    "calibration": 1_000_003,
    "validation": 2_000_029,
    "test": 3_000_017,
    "textures": 4_000_037,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Data sizes and schedules of one training run."""

    render_size: int = 256  # generator output side (what the demo stream sends)
    input_size: int = 128
    stem_stride: int = 1  # 2 halves the input at once (a 256 px input, same stage cost)
    n_train: int = 1600
    n_textures: int = 1600
    n_calibration: int = 500
    n_val_normal: int = 100
    n_val_per_anomaly: int = 20
    n_test_normal: int = 400
    n_test_per_anomaly: int = 100
    epochs: int = 10
    teacher_epochs: int = 24
    # then this many with hard negatives and cuts through the object, at a third of the
    # learning rate (lab, experiments/otolith/README.md: 6 epochs took the teacher's heads
    # 0.874 -> 0.911 and MKD 0.901 -> 0.907; 12 more, heads 0.929 and MKD 0.925)
    teacher_hard_epochs: int = 18
    batch_size: int = 32
    lr: float = 2e-3
    teacher_lr: float = 3e-3
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    # convolutions per teacher stage; the student keeps 2. A deeper teacher is a function
    # the student cannot copy everywhere (lab, 128 px: depth 2 / 4 / 6 gave test AUROC
    # 0.85 / 0.89 / 0.90, experiments/otolith/README.md)
    teacher_depth: int = 6
    direction_weight: float = 1.0
    # test-time views averaged in the map. Lab, 128 px: 1 / 4 turns gave test AUROC 0.907 /
    # 0.917; the 0.5.0 detector with 4 / 8 (turns and mirror images) gave 0.9698 / 0.9713 and
    # 0.9708 / 0.9737 on two fresh 900-specimen sets (experiments/otolith/flip_tta.py)
    views: int = 8
    ablation: bool = True


#: A seconds-long run for tests and smoke checks: tiny images, data and networks.
QUICK = Plan(
    render_size=96,
    input_size=64,
    n_train=48,
    n_textures=16,
    n_calibration=40,
    n_val_normal=12,
    n_val_per_anomaly=3,
    n_test_normal=16,
    n_test_per_anomaly=4,
    epochs=1,
    teacher_epochs=1,
    batch_size=16,
    widths=(8, 8, 16, 16),
    teacher_depth=3,
    teacher_hard_epochs=1,
)


def prepared(size: int) -> Any:
    """The serving preprocessing, kept as uint8 (lossless: it resizes uint8 images)."""
    return lambda image: prepare_otolith(image, size).astype(np.uint8)


def render_training_set(plan: Plan, seed: int, progress: Any) -> tuple[np.ndarray, np.ndarray]:
    """The normal training otoliths and the foreign textures, prepared to the input size.

    Both the detector's training and the standalone teacher pretraining
    (:mod:`.teacher_artifact`) draw them from here, so a pretrained teacher saw exactly the
    images its students are distilled on.
    """
    task = progress.add_task("train (normal)", total=plan.n_train, info="")
    train, _ = make_dataset(
        np.random.default_rng(seed),
        n_normal=plan.n_train,
        n_per_anomaly=0,
        size=plan.render_size,
        transform=prepared(plan.input_size),
        progress=lambda n: progress.advance(task, n),
    )
    rng = np.random.default_rng(seed + OFFSETS["textures"])
    to_input = prepared(plan.input_size)
    textures = np.stack(
        [to_input(dead_leaves(rng, plan.input_size)) for _ in range(plan.n_textures)]
    )
    return train, textures


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (on 0..1) of N x 3 x S x S uint8 images, rounded."""
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1)
    mean = tuple(round(float(m) / 255, 5) for m in pixels.mean(1))
    std = tuple(round(float(v) / 255, 5) for v in pixels.std(1))
    return mean, std


__all__ = ["OFFSETS", "QUICK", "Plan", "channel_stats", "prepared", "render_training_set"]
