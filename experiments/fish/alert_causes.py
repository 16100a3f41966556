"""Why a tracklet was enrolled as a new fish (issue 28, sixth round), on development seeds
only: each seed's cached prepare + embed (``benchmarks/fish_open_set_frames.py --cache DIR``)
decided again by the whole-frame head's decider, every enrolment logged with the rule that
made it (``mean``: the group's mean under the new-fish bar; ``lone``: agreeing views, none
over the threshold), its good views' best scores and drawn fish, and whether the enrolled fish
was a known one (a surplus "new fish" alert), a stranger's second id or a false detection.

    python experiments/fish/alert_causes.py --cache DIR --seeds 7100400 ... [--variant k=v,...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from benchmarks.fish_open_set_frames import cached, run_mode, with_shown  # noqa: E402
from merge_variants import factory  # noqa: E402

from seawatch.models.fish.open_set import OpenSetDecider, _at  # noqa: E402


def logging_decider(make, log: list[dict]):
    """``make``'s decider, its enrolments logged into ``log``."""

    def build(gallery, threshold):
        decider: OpenSetDecider = make(gallery, threshold)
        places: dict[str, tuple] = {}
        one, enrol = decider._one, decider._enrol

        def _one(embedding, source, place, scores):
            places[source.uid] = (place.camera, place.captured_at_ns, place.box, place.quality)
            return one(embedding, source, place, scores)

        def _enrol(track, own):
            each = gallery.scores(np.stack(track.views))
            group = each.mean(axis=0)
            n = len(track.views)
            rule = "mean" if group.max() < threshold - _at(decider.new_drop, n) else "lone"
            views = [
                {
                    "at": places[s.uid][:3],
                    "quality": round(places[s.uid][3], 1),
                    "best": round(float(row.max()), 3),
                    "best_id": gallery.ids[int(row.argmax())],
                }
                for s, row in zip(track.sources, each, strict=True)
            ]
            stacked = np.stack(track.views)
            agree = float(((stacked @ stacked.T).sum() - n) / (n * (n - 1)))
            spread = float((stacked @ stacked.T).min())
            log.append(
                {
                    "rule": rule,
                    "views": views,
                    "group_max": round(float(group.max()), 3),
                    "agree": round(agree, 3),
                    "least": round(spread, 3),
                }
            )
            return enrol(track, own)

        decider._one, decider._enrol = _one, _enrol
        return decider

    return build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--truth", choices=["visible", "outline"], default="visible")
    parser.add_argument("--variant", default="link_similarity=0.6,inherit_agree=0.7")
    args = parser.parse_args()
    for seed in args.seeds:
        if seed >= 7_900_000:
            raise SystemExit("development seeds only")
        frames, batches, outputs, _, _ = cached(args.cache, f"{seed}-threshold-on-3000", None)
        if args.truth == "visible":  # a cache from before round seven: render again
            frames = with_shown(args.cache, seed, 3000, frames)
        log: list[dict] = []
        rows: list[dict] = []
        decider = logging_decider(factory(args.variant), log)
        run_mode("tracklets", frames, batches, outputs, rows, decider, args.truth)
        truth = {(r["camera"], r["captured_at_ns"], tuple(r["box"])): r for r in rows}
        for entry in log:
            fish = []
            for v in entry["views"]:
                cam, t, box = v["at"]
                r = truth.get((cam, t, tuple(box)))
                fish.append(None if r is None else r["truth"])
                v["truth"] = fish[-1]
                v["known"] = None if r is None else r.get("known")
                v["over"] = None if r is None else r["over"]
                v["at"] = [cam, t % 10**12 // 10**6]
            deciding = entry["views"][-1]
            kind = (
                "false"
                if deciding["truth"] is None
                else "known"
                if deciding["known"]
                else "stranger"
            )
            print(json.dumps({"seed": seed, "kind": kind, **entry}), flush=True)


if __name__ == "__main__":
    main()
