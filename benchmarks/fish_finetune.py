"""Fish re-ID fine-tuned on a user's folders: held-out individuals before and after.

The user's data: :mod:`seawatch.models.fish.shifted` (a spotted strain through another camera),
one folder per individual, written to a temporary directory. ``seawatch train fish
--data-dir`` holds out whole individuals (known, calibration, new: never trained on) and
reports rank-1, mAP and open-set AUROC of the start and of the fine-tuned graph on them. Two
starts: the committed model (``--pretrained auto``) and scratch (``none``), same split, same
steps. Seed 7_900_081 (fish) is in the range reserved for final numbers; nothing was chosen on
it. Writes benchmarks/results/fish_finetune.json.

    python benchmarks/fish_finetune.py [--individuals 60] [--views 10] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from seawatch.models.fish.finetune import FinetuneConfig, finetune_fish
from seawatch.models.fish.shifted import write_folders

RESULTS = Path(__file__).parent / "results" / "fish_finetune.json"
FINAL_SEED = 7_900_081


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=60)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--held-out", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=FINAL_SEED)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="fish-finetune-") as tmp:
        data = write_folders(Path(tmp) / "data", args.individuals, args.views, args.seed)
        for start in ("auto", "none"):
            began = time.perf_counter()
            config = FinetuneConfig(pretrained=start, held_out=args.held_out, steps=args.steps)
            card = finetune_fish(data, Path(tmp) / start, config=config, seed=args.seed)
            runs[start] = {
                "before": card.metrics["before"],
                "after": card.metrics["after"],
                "improvement": card.metrics["improvement"],
                "epochs": card.training.epochs,
                "seconds": round(time.perf_counter() - began, 1),
            }
            print(start, json.dumps(runs[start]["improvement"]), runs[start]["seconds"], "s")
    result = {
        "command": "python benchmarks/fish_finetune.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "data": f"{args.individuals} individuals x {args.views} views, shifted look "
        f"(seawatch.models.fish.shifted), generator seed {args.seed}",
        "held_out_share": args.held_out,
        "steps": args.steps,
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
