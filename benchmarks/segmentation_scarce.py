"""Segmentation with scarce labels (issue 27's "+3 points"): the five-row ablation on a pool
label-limited the way real annotation is, scored on held-out tiles.

The plan (every row the same split rule and two equal stages): a pool of ``--pool`` tiles
with masks (seed 7,100,200; "supervised, all" uses them all), its first ``--labelled`` the
third the teacher and the students see, ``--extra`` tiles nobody labelled (7,100,202) for
the students. The fitted networks are kept in ``--nets`` (state dicts), so the rows chosen
on development tiles are scored on the reserved draw once without fitting again:

    python benchmarks/segmentation_scarce.py                  # fit, score development tiles
    python benchmarks/segmentation_scarce.py --final          # score the kept nets, reserved
    python benchmarks/segmentation_scarce.py --refit-from build/segmentation_scarce \
        --nets build/segmentation_scarce_share50 --labelled-share 0.5 --name NAME
                                   # only the students again, from the kept teacher

Development tiles: 7,100,210 (the benchmark's); ``--final``: the reserved draw 7,900,072,
once, after every choice. Writes ``benchmarks/results/segmentation_scarce_dev.json`` or
``segmentation_scarce.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from seawatch.models.segmentation.data import make_tiles
from seawatch.models.segmentation.fit import FitSettings
from seawatch.models.segmentation.scarce import (
    fit_rows,
    gains,
    load_rows,
    paired_interval,
    quality_rho,
    refit_students,
    save_rows,
    score_rows,
    tile_sums,
)
from seawatch.models.segmentation.selftrain import SERVED_ROW, Plan

RESULTS = Path(__file__).parent / "results"
DEV_TILES, FINAL_TILES = 7_100_210, 7_900_072


def _progress():
    last: dict[str, float] = {}
    started = time.perf_counter()

    def say(stage: str, done: int, total: int) -> None:
        name = stage.split(" ")[0]
        if done == total or done % 100 == 0 or name not in last:
            last[name] = time.perf_counter()
            print(f"[{time.perf_counter() - started:7.0f} s] {stage} {done}/{total}", flush=True)

    return say


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=9, help="tiles with masks")
    parser.add_argument("--labelled", type=int, default=3, help="the pool's labelled third")
    parser.add_argument("--extra", type=int, default=144, help="tiles nobody labelled")
    parser.add_argument("--steps", type=int, default=500, help="each of every row's 2 stages")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiles", type=int, default=48, help="held-out tiles scored")
    parser.add_argument("--nets", type=Path, default=Path("build/segmentation_scarce"))
    parser.add_argument("--score-only", action="store_true", help="score the kept nets")
    parser.add_argument(
        "--labelled-share",
        type=float,
        default=None,
        help="share of each student batch drawn from the labelled tiles (default: uniform)",
    )
    parser.add_argument(
        "--refit-from",
        type=Path,
        default=None,
        help="kept nets whose teacher, quality network and supervised rows are reused: "
        "only the students are fitted (a change to the students' side of the plan)",
    )
    parser.add_argument("--final", action="store_true", help="score the reserved draw (once)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default=None, help="results file stem")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.tiles < 1:
        parser.error("--steps and --tiles must be >= 1")
    started = time.perf_counter()
    if args.final or args.score_only:  # the reserved draw scores nets chosen before, as fitted
        rows = load_rows(args.nets)
    else:
        plan = Plan(
            pool=args.pool,
            labelled=args.labelled,
            unlabelled_extra=args.extra,
            fit=FitSettings(steps=args.steps, batch=args.batch),
            student_steps=args.steps,
            seed=args.seed,
            labelled_share=args.labelled_share,
        )
        if args.refit_from is None:
            rows = fit_rows(plan, _progress())
        elif args.refit_from.resolve() == args.nets.resolve():
            parser.error("--refit-from and --nets must be different folders")
        else:
            rows = refit_students(args.refit_from, plan, _progress())
        save_rows(rows, args.nets)
    seed = FINAL_TILES if args.final else DEV_TILES
    tiles = make_tiles(args.tiles, seed, keep_full=True)
    scores = score_rows(rows, tiles)
    sums = tile_sums(rows, tiles)
    student, third, every = (sums[k] for k in (SERVED_ROW, "supervised_third", "supervised_all"))
    intervals = {  # paired bootstrap over the tiles: how far one draw's gaps can be trusted
        "student_minus_supervised_third": paired_interval(student, third),
        "supervised_all_minus_student": paired_interval(every, student),
        "supervised_all_minus_supervised_third": paired_interval(every, third),
    }
    result = {
        "split": "final (reserved draw)" if args.final else "development",
        "tiles": {"seed": seed, "count": args.tiles},
        "plan": rows.plan,
        "miou": {key: value["miou"] for key, value in scores.items()},
        "criteria": gains(scores),
        "bootstrap_over_tiles_points": intervals,
        "quality": quality_rho(rows, tiles),
        "rows": scores,
        "fit_seconds": rows.seconds,
        "pseudo_labels": rows.counts,
        "seconds": round(time.perf_counter() - started, 1),
        "cpu": platform.processor() or platform.machine(),
        "date": datetime.now(UTC).date().isoformat(),
        "command": shlex.join(
            [
                "python",
                "benchmarks/segmentation_scarce.py",
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
    }
    name = args.name or ("segmentation_scarce" if args.final else "segmentation_scarce_dev")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    shown = ("miou", "criteria", "bootstrap_over_tiles_points")
    print(json.dumps({key: result[key] for key in shown}, indent=1))
    return result


if __name__ == "__main__":
    main()
