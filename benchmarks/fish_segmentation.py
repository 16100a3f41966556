"""Whole-frame fish detection, classical vs the fish segmentation network (issues 27 + 28).

Tank scenes (:func:`~seawatch.models.fish.tank_scene.render_scene`, the default mix: 1-4
fish, some across the edge, a quarter drawn over the fish before) through both detectors:
``threshold`` (:func:`~seawatch.models.fish.frame_detect.detect_fish`) and ``model``
(:class:`~seawatch.models.fish.frame_segment.FishSegmenter`, the artifact of
``seawatch train fish-segmentation``). Figures (:mod:`seawatch.models.fish.detection_score`):
recall and precision of boxes (IoU >= 0.5, one to one), the pairs of fish whose boxes
overlap that are both found, the boxes that hold two fish, and milliseconds a frame (one
core, process time).

Development seeds: 7,100,720-7,100,799 (the network's own seeds are 7,100,700-702).

    python benchmarks/fish_segmentation.py [--seeds 7100720] [--frames 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "models" / "fish-segmentation"
RESULTS = HERE / "results" / "fish_segmentation.json"


def run_seed(seed: int, frames: int, model: Path) -> list[dict]:
    """Both detectors' figures on ``frames`` scenes of ``seed``."""
    from threadpoolctl import threadpool_limits

    from seawatch.models.fish.detection_score import DetectionScore
    from seawatch.models.fish.frame_detect import detect_fish
    from seawatch.models.fish.frame_segment import FishSegmenter
    from seawatch.models.fish.synthetic import make_individuals
    from seawatch.models.fish.tank_scene import render_scene

    threadpool_limits(1, user_api="blas")
    rng = np.random.default_rng(seed)
    pool = make_individuals(40, 0)
    scenes = [render_scene(pool, rng) for _ in range(frames)]
    segmenter = FishSegmenter(model)
    rows = []
    for name, detect in (("threshold", detect_fish), ("model", segmenter)):
        score = DetectionScore()
        spent = 0.0
        for scene in scenes:
            t0 = time.process_time()
            found = detect(scene.image)
            spent += time.process_time() - t0
            score.add(scene, [d.box for d in found])
        rows.append(
            {
                "seed": seed,
                "detector": name,
                "frames": frames,
                **score.summary(),
                "ms_per_frame": round(spent / frames * 1e3, 2),
            }
        )
    segmenter.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7100720])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        for row in run_seed(seed, args.frames, args.model):
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "command": "python benchmarks/fish_segmentation.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
