"""The few-label benchmark's report: per-arm summaries, the console table and the plot
(``benchmarks/few_labels.py`` writes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def summarise(results: dict[str, dict[str, list[float]]]) -> dict:
    """Mean, std and runs per method and label count."""
    return {
        method: {
            k: {
                "mean": round(float(np.mean(v)), 4),
                "std": round(float(np.std(v)), 4),
                "runs": [round(x, 4) for x in v],
            }
            for k, v in per_k.items()
        }
        for method, per_k in results.items()
    }


def show(
    console: Console, summary: dict, counts: list[int], test_seed: int, methods: tuple[str, ...]
) -> None:
    """The table and the gaps the issue asks about, for one test draw (``methods``: every
    arm in table order, learnt ones from the third on)."""
    table = Table(title=f"macro-F1 on the shifted test draw {test_seed} (mean ± std over seeds)")
    table.add_column("labels/class", justify="right")
    shown = [m for m in methods if m in summary]
    for method in shown:
        table.add_column(method, justify="right")
    for k in counts:
        row = [str(k)]
        for m in shown:
            s = summary[m][str(k)]
            row.append(f"{s['mean']:.3f} ± {s['std']:.3f}")
        table.add_row(*row)
    console.print(table)
    pretrained = [m for m in methods[2:] if m in summary]
    if not pretrained or "scratch" not in summary or "classical" not in summary:
        return
    for k in counts:
        best = max(summary[m][str(k)]["mean"] for m in pretrained)
        console.print(
            f"{k:>3} labels: best pretrained - scratch = "
            f"{100 * (best - summary['scratch'][str(k)]['mean']):+.1f} points, "
            f"- classical = {100 * (best - summary['classical'][str(k)]['mean']):+.1f} points"
        )


def plot(
    summaries: dict[int, dict], counts: list[int], path: Path, methods: tuple[str, ...]
) -> None:
    """Learning curves: macro-F1 against labels per class, one line per method, one panel
    per test draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, counts = len(summaries), sorted(counts)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.2), dpi=120, squeeze=False)
    for ax, (test_seed, summary) in zip(axes[0], summaries.items(), strict=True):
        for method, marker in zip(methods, "osD^vP*Xh", strict=False):
            if method not in summary:
                continue
            means = [summary[method][str(k)]["mean"] for k in counts]
            stds = [summary[method][str(k)]["std"] for k in counts]
            ax.errorbar(counts, means, yerr=stds, marker=marker, capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xticks(counts, [str(k) for k in counts])
        ax.minorticks_off()
        ax.set_xlabel("labelled images per class (log scale)")
        ax.set_ylabel(f"macro-F1 on the shifted test draw {test_seed}")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title("Few labels on an unseen instrument (12 classes, 2 new)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
