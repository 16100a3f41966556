"""Whole tank frames (issue 28): detection, orientation and identification of each fish.

Synthetic tank scenes (:mod:`seawatch.models.fish.tank_scene`: 1-4 fish from the committed
gallery's individuals, about half facing right, some across the edge or over another) go
through :func:`~seawatch.models.fish.frame_detect.detect_fish`. A detection is right when
its box overlaps a drawn fish's box with IoU >= 0.5 (each fish matched once, best IoU first).

Figures per seed: detection recall (all fish, and fish at least 80 % visible) and precision,
orientation accuracy over matched fish, the detector's time per frame (one core), and the
share of matched crops the committed model (ONNX Runtime) puts on the right individual at
or above its match threshold, as cut (mirrored when found facing right) and, for contrast,
never mirrored.

Development seeds: 7,100,500-7,100,599.

    python benchmarks/fish_frames.py [--seeds 7100500 7100501] [--frames 300]
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
FISH_DIR = HERE.parent / "models" / "fish"
RESULTS = HERE / "results" / "fish_frames.json"
GALLERY_FISH = (*range(0, 144), *range(192, 216))


def match(truth: list, found: list, iou) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (truth index, detection index) with IoU >= 0.5."""
    pairs = sorted(
        ((iou(t.box, d.box), i, j) for i, t in enumerate(truth) for j, d in enumerate(found)),
        reverse=True,
    )
    used_t, used_d, out = set(), set(), []
    for score, i, j in pairs:
        if score < 0.5 or i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        out.append((i, j))
    return out


def run_seed(seed: int, frames: int) -> dict:
    """Render ``frames`` scenes of ``seed``, detect, and score."""
    from seawatch.contracts.card import ONNX_FILE
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.frame_detect import detect_fish
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.head import FishIdentifier, fish_input8
    from seawatch.models.fish.synthetic import make_individual
    from seawatch.models.fish.tank_scene import iou, render_scene

    rng = np.random.default_rng(seed)
    pool = [make_individual(int(i), 0) for i in rng.choice(GALLERY_FISH, 40, replace=False)]
    n_truth = n_found = n_hit = n_vis = n_vis_hit = n_orient = 0
    detect_s = 0.0
    crops, flipped, names = [], [], []
    for _ in range(frames):
        scene = render_scene(pool, rng)
        t0 = time.perf_counter()
        found = detect_fish(scene.image)
        detect_s += time.perf_counter() - t0
        pairs = match(list(scene.fish), found, iou)
        n_truth += len(scene.fish)
        n_found += len(found)
        n_hit += len(pairs)
        visible = {i for i, f in enumerate(scene.fish) if f.visible >= 0.8}
        n_vis += len(visible)
        n_vis_hit += sum(1 for i, _ in pairs if i in visible)
        for i, j in pairs:
            fish, det = scene.fish[i], found[j]
            n_orient += det.facing_right == fish.facing_right
            crops.append(fish_input8(det.crop, 64, 160))
            unflipped = det.crop[:, ::-1] if det.facing_right else det.crop
            flipped.append(fish_input8(np.ascontiguousarray(unflipped), 64, 160))
            names.append(fish.individual)
    gallery = Gallery.load(FISH_DIR / "gallery.npz")
    threshold = json.loads((FISH_DIR / "card.json").read_text())["thresholds"]["match_similarity"]

    def right_share(inputs: list[np.ndarray]) -> float:
        tensor = np.stack(inputs).transpose(0, 3, 1, 2).astype(np.float32)
        with OnnxRuntimeBackend(FISH_DIR / ONNX_FILE, threads=1) as backend:
            out = np.concatenate(
                [backend.run(tensor[k : k + 64]) for k in range(0, len(tensor), 64)]
            )
        matches = gallery.match(FishIdentifier.normalise(out))
        right = [
            m.individual == n and m.similarity >= threshold
            for m, n in zip(matches, names, strict=True)
        ]
        return float(np.mean(right))

    return {
        "seed": seed,
        "frames": frames,
        "fish": n_truth,
        "detections": n_found,
        "recall": round(n_hit / max(n_truth, 1), 4),
        "recall_visible_80": round(n_vis_hit / max(n_vis, 1), 4),
        "precision": round(n_hit / max(n_found, 1), 4),
        "orientation_accuracy": round(n_orient / max(n_hit, 1), 4),
        "detect_ms_per_frame": round(1000 * detect_s / frames, 2),
        "identified_right": round(right_share(crops), 4) if crops else None,
        "identified_right_never_mirrored": round(right_share(flipped), 4) if crops else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7100500, 7100501])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        row = run_seed(seed, args.frames)
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    result = {
        "command": "python benchmarks/fish_frames.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "seeds": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
