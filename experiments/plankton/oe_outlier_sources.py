"""Which outliers should the OOD scorer learn from? (issue 24, item 7; development draws only)

Each arm copies the committed plankton artifact, refits its outlier-exposure scorer
(:func:`seawatch.models.plankton.ood_oe_fit.fit_oe`, the served inputs) with another set of
outliers, and scores the benchmark's development draws (``benchmarks/ood.py --seed
7150001..7150003``; never a reserved seed):

- ``base``: the served outliers (drawn organisms of no taxon + corrupted optics), refitted;
- ``chimeras``: + two-taxon chimeras of the training split (:mod:`.chimeras`), generator-free;
- ``known``: + the calibration taxa at a fresh seed (known unknowns, as a user's folder of
  other taxa would give them); the calibration check at the fit is then no longer blind;
- ``both``: chimeras and known unknowns.

    python experiments/plankton/oe_outlier_sources.py --arms base,chimeras --out /tmp/oex
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_SEEDS = (7_150_001, 7_150_002, 7_150_003)
KNOWN_SEED, KNOWN_PER_TAXON = 7_100_130, 500
CHIMERAS = 4000


def fit_arm(arm: str, model: Path, out: Path) -> dict:
    """Copy the artifact and refit its scorer with the arm's outliers."""
    from seawatch.contracts.card import load_card
    from seawatch.models.plankton.novel import CALIBRATION_TAXA, novel_set
    from seawatch.models.plankton.ood_oe_fit import fit_oe

    target = out / arm
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model, target)
    size = load_card(target).input.size
    known = None
    if arm in ("known", "both"):
        known, _ = novel_set(KNOWN_PER_TAXON, KNOWN_SEED, taxa=CALIBRATION_TAXA, size=size)
    chimeras = CHIMERAS if arm in ("chimeras", "both") else 0
    start = time.perf_counter()
    report = fit_oe(
        target, command=f"oe_outlier_sources {arm}", chimeras=chimeras, known_outliers=known
    )
    calibration = report["ood"]["calibration"]
    return {
        "fit_seconds": round(time.perf_counter() - start, 1),
        "validation": calibration["validation"],
        "calibration_taxa": calibration["held_out_taxa"]["unknown"],
        "softmax_floor": report["ood"]["softmax_floor"],
    }


def score_arm(arm: str, out: Path) -> dict:
    """The OOD benchmark on the development draws."""
    shares = {}
    for seed in DEV_SEEDS:
        cmd = [sys.executable, str(ROOT / "benchmarks/ood.py"), "--model", str(out / arm)]
        cmd += ["--seed", str(seed), "--out", str(out / "results"), "--tag", arm]
        subprocess.run(cmd, check=True, capture_output=True)
        data = json.loads((out / "results" / f"ood_dev_{seed}_{arm}.json").read_text())
        shares[seed] = {
            name: data["sets"][name]["unknown_with_ood"]
            for name in ("in_distribution", "held_out_taxa", "shifted")
        } | {"held_out_by_taxon": data["sets"]["held_out_taxa"]["unknown_by_taxon"]}
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="base,chimeras,known,both")
    parser.add_argument("--model", type=Path, default=ROOT / "models/plankton")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for arm in args.arms.split(","):
        record = {"arm": arm, "fit": fit_arm(arm, args.model, args.out)}
        record["dev"] = score_arm(arm, args.out)
        with (args.out / "runs.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
