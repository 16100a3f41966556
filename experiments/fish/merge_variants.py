"""Decision variants against ids mixing two fish (issue 28, fifth round), on development
seeds only: each seed's frames prepared and embedded once (``benchmarks/fish_open_set_frames.py
--cache DIR``), then every variant's decider decides them all again. Per seed and variant:
the issue's figures, the sightings named as another fish's id (:mod:`named_wrong`) and the
named detections that lie over two drawn fish (IoU >= 0.3 with the second; ``close``: >= 0.6,
a coin toss which fish the scoring gives it: the boxes behind most mixed ids), the sensitive
count the rare mixed ids hide.

    python experiments/fish/merge_variants.py --cache DIR --seeds 7100400 ... --variants base ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from benchmarks.fish_open_set_frames import cached, run_mode, with_shown  # noqa: E402
from named_wrong import named_wrong  # noqa: E402

from seawatch.models.fish.occlusion import MergeRule  # noqa: E402
from seawatch.models.fish.open_set import OpenSetDecider  # noqa: E402
from seawatch.models.fish.tracklets import Tracklets  # noqa: E402


def factory(name: str):
    """The decider of a variant ``name``: ``head`` (the whole-frame head's own), ``base``
    (every option at its default) or ``key=value[,key=value]`` over the decider's and
    tracklets' options."""
    if name == "head":
        return None
    options: dict = {}
    tracks: dict = {}
    rule: dict = {}
    if name != "base":
        for item in name.split(","):
            key, value = item.split("=")
            target = tracks if key in {"link_similarity", "gap_s", "max_move"} else options
            target = rule if key in {"min_cover", "max_growth", "hidden"} else target
            target[key] = float(value) if key != "hidden" else value == "1"

    def make(gallery, threshold):
        merge_rule = MergeRule(**rule)
        return OpenSetDecider(
            gallery, threshold, tracklets=Tracklets(merge_rule=merge_rule, **tracks), **options
        )

    return make


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--truth", choices=["visible", "outline"], default="visible")
    parser.add_argument("--variants", nargs="+", default=["base"])
    parser.add_argument("--rows", type=Path, default=None)
    args = parser.parse_args()
    keys = [
        "matched_known_declared_new",
        "matched_known_wrong",
        "matched_known_right",
        "matched_ids_per_new_fish",
        "new_fish_alerts_all",
        "matched_mixed_ids",
        "merge_detections",
        "decide_us_per_sighting",
    ]
    for seed in args.seeds:
        if seed >= 7_900_000:
            raise SystemExit("development seeds only")
        frames, batches, outputs, _, _ = cached(args.cache, f"{seed}-threshold-on-3000", None)
        if args.truth == "visible":  # a cache from before round seven: render again
            frames = with_shown(args.cache, seed, 3000, frames)
        for variant in args.variants:
            rows: list[dict] = []
            run = run_mode(
                "tracklets", frames, batches, outputs, rows, factory(variant), args.truth
            )
            for r in rows:
                r["seed"], r["variant"] = seed, variant
            _, _, wrong = named_wrong(rows)
            named = [r for r in rows if r["individual"] != "unknown" and len(r["over"]) > 1]
            over_two = sum(r["over"][1][0] >= 0.3 for r in named)
            over_two_close = sum(r["over"][1][0] >= 0.6 for r in named)
            figures = {k.removeprefix("matched_"): run[k] for k in keys}
            line = {"seed": seed, "variant": variant, **figures}
            line |= {"named_wrong": len(wrong), "named_over_two": over_two}
            line |= {"named_over_two_close": over_two_close}
            print(json.dumps(line), flush=True)
            if args.rows:
                with args.rows.open("a") as out:
                    out.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
