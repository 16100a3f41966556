"""Shared by the otolith lab scripts: where the cache lives, loading it, scoring it."""

import os

import numpy as np

from seawatch.models.otolith.evaluate import detection_metrics

LAB = os.environ.get("OTOLITH_LAB", "/tmp/otolith-lab")  # cached data, teachers, maps


def load_data(size: int, suffix: str = "") -> dict[str, np.ndarray]:
    """The arrays ``make_data.py`` cached for ``size`` (``suffix`` n: standardised by hand)."""
    return dict(np.load(f"{LAB}/data{size}{suffix}.npz"))


def rgb_stats(train: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..1) of N x 3 x S x S uint8 images, as the training does."""
    pixels = train.transpose(1, 0, 2, 3).reshape(3, -1)
    return tuple(float(m) / 255 for m in pixels.mean(1)), tuple(
        float(s) / 255 for s in pixels.std(1)
    )


def aurocs(labels: np.ndarray, scores: np.ndarray) -> tuple[float, dict[str, float]]:
    """Image AUROC over every defect, and per defect type against the normals."""
    metrics = detection_metrics(labels, scores, threshold=float("inf"))
    return metrics["auroc"], metrics["auroc_per_type"]


def one_cycle(params, lr: float, epochs: int, steps: int):
    """AdamW (weight decay 1e-4) with a one-cycle schedule, as the package's training uses."""
    import torch

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.15
    )
    return opt, sched
