"""The head's decide CPU a detection with and without the eighth round's options (plain,
query expansion, threshold per gallery size), interleaved runs on one development draw's
cached prepare + embed (``benchmarks/fish_open_set_frames.py --cache DIR`` fills it). Take
the bench lock for a quiet timing:

    flock /tmp/seawatch-bench.lock python experiments/fish/decide_cpu.py --cache DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]

from benchmarks.fish_open_set_frames import cached, run_mode  # noqa: E402

VARIANTS = {"plain": {}, "query_expansion": {"expand": True}, "by_size": {"by_size": True}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7100403)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.seed >= 7_900_000:
        raise SystemExit("development seeds only")
    key = f"{args.seed}-threshold-on-3000"
    frames, batches, outputs, _, _ = cached(args.cache, key, None)
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, options in VARIANTS.items():
            run = run_mode("tracklets", frames, batches, outputs, None, truth="outline", **options)
            runs[name].append(run["decide_us_per_sighting"])
    medians = {name: statistics.median(v) for name, v in runs.items()}
    print(json.dumps({"seed": args.seed, "us_per_detection": runs, "median": medians}))


if __name__ == "__main__":
    main()
