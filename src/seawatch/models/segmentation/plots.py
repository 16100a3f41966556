"""The ablation plot (matplotlib, Agg; no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw_ablation(
    rows: list[tuple[str, float]], threshold: float | None, title: str, path: Path
) -> Path:
    """Horizontal bars: instance mIoU (points) of each row; the threshold as a dashed line."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    names = [name for name, _ in rows][::-1]
    values = [100.0 * v for _, v in rows][::-1]
    bars = ax.barh(names, values, color=["#4c72b0"] * (len(rows) - 1) + ["#dd8452"])
    for bar, value in zip(bars, values, strict=True):
        ax.text(value + 0.3, bar.get_y() + bar.get_height() / 2, f"{value:.1f}", va="center")
    if threshold is not None:
        ax.axvline(
            100.0 * threshold,
            color="k",
            ls="--",
            lw=1,
            label=f"global threshold {100.0 * threshold:.1f}",
        )
        ax.legend(loc="lower right", fontsize=8)
    low = min([*values, 100.0 * threshold if threshold is not None else 100.0])
    ax.set_xlim(max(0.0, low - 10.0), min(100.0, max(values) + 6.0))
    ax.set_xlabel("instance mIoU (points) on held-out frames")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["draw_ablation"]
