"""Plot the development-draw results of the OOD scorer variants (issue 24, item 7).

Reads `results/oe_outlier_sources_dev.jsonl` and `results/ssl_inputs_ood_dev.json` and draws,
per variant, the share of held-out taxa and of the shifted instrument reported unknown on
the three development draws (dots) and their mean (bar), with the 90 % goal.

    python experiments/plankton/plot_ood_attempts.py   # writes results/ood_attempts_dev.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).parent / "results"
LABELS = {
    "base": "served inputs (refit)",
    "known": "+ known unknowns",
    "chimeras": "+ chimeras",
    "knn": "+ SimCLR kNN",
    "knn+features": "+ SimCLR kNN + features",
}


def variants() -> dict[str, dict[str, list[float]]]:
    """Variant label -> set -> the three development draws' shares (%)."""
    out: dict[str, dict[str, list[float]]] = {}
    for line in (RESULTS / "oe_outlier_sources_dev.jsonl").read_text().splitlines():
        run = json.loads(line)
        if run["arm"] not in LABELS or "first version" in run.get("note", ""):
            continue
        out[LABELS[run["arm"]]] = {
            s: [100 * d[s] for d in run["dev"].values()] for s in ("held_out_taxa", "shifted")
        }
    ssl = json.loads((RESULTS / "ssl_inputs_ood_dev.json").read_text())["results"]
    for arm in ("knn", "knn+features"):
        out[LABELS[arm]] = {
            s: [100 * d[s] for d in ssl[arm]["dev"].values()] for s in ("held_out_taxa", "shifted")
        }
    return out


def main() -> None:
    data = variants()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (key, title) in zip(
        axes, (("held_out_taxa", "held-out taxa"), ("shifted", "shifted instrument")), strict=True
    ):
        for i, sets in enumerate(data.values()):
            values = sets[key]
            ax.bar(i, sum(values) / len(values), color="#9ecae1" if i else "#3182bd")
            ax.plot([i] * len(values), values, "k.", ms=5)
        ax.axhline(90, color="crimson", ls="--", lw=1, label="goal 90 %")
        ax.set_xticks(range(len(data)), list(data), rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title}: unknown at 4 % of validation")
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("% unknown, dev 7,150,001-003")
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    path = RESULTS / "ood_attempts_dev.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
