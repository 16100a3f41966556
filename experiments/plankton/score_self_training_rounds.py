"""Score the self-training lab's models ONCE on reserved test draws (run once, 2026-12-07,
after every choice was made on validation; do not rerun for a choice).

Each arm's model is the one its keep-best rule keeps on validation (seed 7_100_003):
``ssl`` the teacher, ``ssl+self`` / ``ssl+self2`` the fixed-threshold round-1 student
(round 2 lost on validation), ``ssl+flex`` the class-adaptive round-1 student, ``ssl+flex2``
the class-adaptive round-2 student. One labelled pool (7_200_000: the benchmark's seed 0),
so one seed, not the benchmark's five.

    python experiments/plankton/score_self_training_rounds.py --start SSL/backbone.pt \
        --models /tmp/self-training-rounds --teacher /tmp/few90/teacher.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from seawatch.models.plankton.finetune import macro_f1, new_model, predict
from seawatch.models.plankton.shifted import SHIFTED_TAXA, shifted_set

N = len(SHIFTED_TAXA)
TEST_SEEDS = (7_900_007, 7_900_009)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True, help="self_training_rounds.py --out")
    parser.add_argument("--out", type=Path, default=Path("/tmp/self-training-rounds/score.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = {
        "ssl": args.teacher,
        "ssl+self": args.models / "fixed_r1.pt",
        "ssl+self2": args.models / "fixed_r1.pt",
        "ssl+flex": args.models / "flex_r1.pt",
        "ssl+flex2": args.models / "flex_r2.pt",
    }
    validation = shifted_set(20, 7_100_003)
    tests = {s: shifted_set(100, s) for s in TEST_SEEDS}
    out = {}
    for arm, path in arms.items():
        model, _ = new_model(N, validation[0], args.start)
        model.load_state_dict(torch.load(path))
        out[arm] = {
            str(s): round(macro_f1(y, predict(model, x), N), 4) for s, (x, y) in tests.items()
        }
        out[arm]["validation"] = round(macro_f1(validation[1], predict(model, validation[0]), N), 4)
        print(arm, out[arm], flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
