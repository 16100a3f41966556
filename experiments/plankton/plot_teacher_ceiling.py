"""Lab: the runs of ``teacher_ceiling.py`` as one JSON and a plot (dev macro-F1 against
labels per class, one line per start, the many-label ceiling included).

    python experiments/plankton/plot_teacher_ceiling.py /tmp/t24/runs.jsonl \
        benchmarks/results/few_labels_ceiling_dev
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from seawatch.models.plankton.finetune import schedule_for

N_CLASSES = 12


def steps(run: dict) -> int:
    """Optimiser steps of a run's fine-tuning (from its schedule and labelled-set size)."""
    found = re.search(r"epochs=(\d+), batch_size=(\d+)", run.get("schedule", ""))
    if found is None:  # the first runs, before the schedule was logged: schedule_for's own
        schedule = schedule_for(run["labels"] * N_CLASSES)
        epochs, batch = schedule.epochs, schedule.batch_size
    else:
        epochs, batch = int(found[1]), int(found[2])
    return epochs * math.ceil(run["labels"] * N_CLASSES / batch)


def label(run: dict) -> str:
    """A short name for a run's start, size and schedule."""
    start = "synthetic" if run["start"] == "synthetic" else Path(run["start"]).parent.name
    extra = f", {run['size']} px" if run["size"] != 64 else ""
    extra += ", 3x steps (900-1,140)" if steps(run) > 600 else ", schedule_for (300-380 steps)"
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
    fig, ax = plt.subplots(figsize=(10, 4.4))
    for name, points in sorted(lines.items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], "o-", label=name)
    for run in runs:  # self-training students: a star at the teacher's label count
        for student in run.get("self", []):
            student_steps = "900" if "epochs=90" in student["student_schedule"] else "300"
            name = f"{label(run)} + student {student_steps} steps"
            ax.plot([run["labels"]], [student["dev"]], "*", markersize=11, label=name)
    ax.axhline(0.90, color="grey", linestyle="--", linewidth=1, label="issue 24 goal (0.90)")
    ax.set_xscale("log")
    ax.set_xticks([10, 20, 50, 100, 200, 400], labels=["10", "20", "50", "100", "200", "400"])
    ax.set_xlabel("labels per class (shifted instrument, 12 classes)")
    ax.set_ylabel("macro-F1, dev draw (720 images)")
    ax.set_title("PlanktonNet, mode last, one seed: more labels, more steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print(f"wrote {args.out.with_suffix('.json')} and .png")


if __name__ == "__main__":
    main()
