"""Evaluation plots of the fish re-ID model (matplotlib, Agg; no torch)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def draw_similarity(
    genuine: np.ndarray,
    new: np.ndarray,
    calibration: np.ndarray,
    threshold: float,
    far: float,
    path: Path,
) -> Path:
    """Histograms: known sightings' score for their own individual vs new fish's best score."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    bins = np.linspace(-0.2, 1.0, 61)
    ax.hist(genuine, bins, alpha=0.6, density=True, label=f"genuine (known fish, n={len(genuine)})")
    ax.hist(new, bins, alpha=0.6, density=True, label=f"impostor (new fish, test, n={len(new)})")
    ax.hist(
        calibration,
        bins,
        density=True,
        histtype="step",
        color="k",
        label=f"impostor (calibration, n={len(calibration)})",
    )
    ax.axvline(threshold, color="r", ls="--", label=f"threshold {threshold:.3f} (FMR {far:.0%})")
    ax.set_xlabel("cosine similarity (best view of the individual)")
    ax.set_ylabel("density")
    ax.set_title("Fish re-ID: genuine vs impostor similarity")
    ax.legend(fontsize=8)
    return _save(fig, path)


def draw_cmc(curves: dict[str, np.ndarray], path: Path) -> Path:
    """Cumulative match characteristic curves, one per gallery part."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, curve in curves.items():
        ranks = np.arange(1, len(curve) + 1)
        ax.plot(ranks, curve, marker="o", ms=3, label=f"{name} (top-1 {curve[0]:.3f})")
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate")
    lowest = min(float(c.min()) for c in curves.values())
    ax.set_ylim(max(0.0, math.floor((lowest - 0.02) * 50) / 50), 1.002)
    ax.set_xticks(range(1, max(len(c) for c in curves.values()) + 1, 2))
    ax.grid(alpha=0.3)
    ax.set_title("Fish re-ID: CMC on held-out sightings")
    ax.legend()
    return _save(fig, path)


def draw_examples(rows: list[tuple[np.ndarray, np.ndarray | None, str]], path: Path) -> Path:
    """Query crops beside the enrolment image of their best match, with the verdict."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(7, 1.3 * len(rows)), dpi=110, squeeze=False)
    for (query, match, caption), (left, right) in zip(rows, axes, strict=True):
        left.imshow(query.transpose(1, 2, 0))
        if match is not None:
            right.imshow(match.transpose(1, 2, 0))
        left.set_title(caption, fontsize=7, loc="left")
        for ax in (left, right):
            ax.set_axis_off()
    fig.suptitle("query (left) and the gallery view of its best match (right)", fontsize=9)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


__all__ = ["draw_cmc", "draw_examples", "draw_similarity"]
