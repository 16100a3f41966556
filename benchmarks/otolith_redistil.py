"""The otolith detector re-distilled on another lab's normals: AUROC on that lab's defects.

The other lab: :mod:`seawatch.models.otolith.other_lab` (another stain, light, gamma and
tray). Its normals go to a folder; ``seawatch train otolith --normal-dir`` re-distils the
committed detector's student on a share of them and calibrates the threshold on the rest.
Then a fresh test draw of the lab (normals and every defect) and of the synthetic scanner is
scored through the start (the committed graph of the same views) and the new graph: AUROC,
false-alarm and detection rates at each one's threshold. Seed 7_900_051 (otolith) is in the
range reserved for final numbers; nothing was chosen on it. Writes
benchmarks/results/otolith_redistil.json.

    python benchmarks/otolith_redistil.py [--normals 120] [--steps 150] [--views 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from seawatch.contracts.card import load_card
from seawatch.models.otolith.calibrate import artifact_scores
from seawatch.models.otolith.evaluate import detection_metrics
from seawatch.models.otolith.head import THRESHOLD_KEY
from seawatch.models.otolith.other_lab import other_lab_set
from seawatch.models.otolith.redistil import RedistilConfig, redistil
from seawatch.models.otolith.serving_views import serving_dir
from seawatch.models.otolith.synthetic import make_dataset

RESULTS = Path(__file__).parent / "results" / "otolith_redistil.json"
FINAL_SEED = 7_900_051
START = Path("models/otolith")


def _score(directory: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    card = load_card(directory)
    scores = artifact_scores(directory, card, list(images))
    return detection_metrics(labels, scores, float(card.thresholds[THRESHOLD_KEY]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--normals", type=int, default=120)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--test-normals", type=int, default=100)
    parser.add_argument("--test-per-defect", type=int, default=10)
    parser.add_argument("--seed", type=int, default=FINAL_SEED)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="otolith-redistil-") as tmp:
        folder = Path(tmp) / "normals"
        folder.mkdir()
        normals, _ = other_lab_set(np.random.default_rng(args.seed), n_normal=args.normals)
        for i, image in enumerate(normals):
            cv2.imwrite(str(folder / f"{i:04d}.png"), image)
        config = RedistilConfig(steps=args.steps, views=args.views)
        card = redistil(START, folder, Path(tmp) / "new", config=config, seed=args.seed)
        trained_s = time.perf_counter() - began
        start = serving_dir(START, load_card(START), args.views)
        sets = {
            "other_lab": other_lab_set(
                np.random.default_rng(args.seed + 1),
                n_normal=args.test_normals,
                n_per_anomaly=args.test_per_defect,
            ),
            "synthetic": make_dataset(
                np.random.default_rng(args.seed + 2),
                n_normal=args.test_normals,
                n_per_anomaly=args.test_per_defect,
            ),
        }
        results = {
            name: {"before": _score(start, *data), "after": _score(Path(tmp) / "new", *data)}
            for name, data in sets.items()
        }
    for name, r in results.items():
        print(name, "auroc", r["before"]["auroc"], "->", r["after"]["auroc"])
    result = {
        "command": "python benchmarks/otolith_redistil.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "start": f"{START} ({load_card(START).release}), its {args.views}-view graph",
        "redistillation": card.metrics["redistillation"],
        "history": card.metrics["history"],
        "training_seconds": round(trained_s, 1),
        "test": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
