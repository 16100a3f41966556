"""Lab: the runs of ``teacher_ceiling.py`` as one JSON and a plot (dev macro-F1 against
labels per class, one line per start, the many-label ceiling included).

    python experiments/plankton/plot_teacher_ceiling.py /tmp/t24/runs.jsonl \
        benchmarks/results/few_labels_ceiling_dev
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def label(run: dict) -> str:
    """A short name for a run's start, size and schedule."""
    start = "synthetic" if run["start"] == "synthetic" else Path(run["start"]).parent.name
    extra = f", {run['size']} px" if run["size"] != 64 else ""
    if "epochs=30, batch_size=128" in run.get("schedule", ""):
        extra += ", 3x steps"
    return f"{start}{extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("out", type=Path, help="path without suffix: writes .json and .png")
    args = parser.parse_args()
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "what": "issue 24 lab: many-label ceiling and SimCLR teachers, development "
                "draws only (dev scoring draw seed 7_100_060, 60/class; mode chosen on the "
                "benchmark's validation draw 7_100_003; labelled pools 7_200_000 + i "
                "(50/class) and 7_260_000 (400/class); unlabelled 7_000_001)",
                "command": "python experiments/plankton/teacher_ceiling.py ft|ssl ...",
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    lines: dict[str, dict[int, float]] = {}
    for run in runs:
        if run.get("pool_seed", 7_200_000) not in (7_200_000, 7_260_000):
            continue  # one pool per point: the second 50-label pool is in the JSON
        lines.setdefault(label(run), {})[run["labels"]] = run["dev_of_chosen"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, points in sorted(lines.items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], "o-", label=name)
    ax.axhline(0.90, color="grey", linestyle="--", linewidth=1, label="issue 24 goal (0.90)")
    ax.set_xscale("log")
    ax.set_xticks([50, 100, 200, 400], labels=["50", "100", "200", "400"])
    ax.set_xlabel("labels per class (shifted instrument, 12 classes)")
    ax.set_ylabel("macro-F1, dev draw (720 images)")
    ax.set_title("Same network and fine-tuning recipe, more labels (one seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print(f"wrote {args.out.with_suffix('.json')} and .png")


if __name__ == "__main__":
    main()
