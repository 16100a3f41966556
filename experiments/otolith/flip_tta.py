"""Test-time flips on a committed otolith detector, through the serving head (ONNX Runtime).

The exported graph averages the maps of four 90-degree turns. This adds the mirror image:
the map of the horizontally flipped photograph, flipped back, averaged with the plain one
(eight dihedral views in all), and reports AUROC on the validation and test sets the card
records, or on a fresh set from ``SEED`` (400 normals, 100 of each defect), so that a choice is
not made on the test set. Meant for a four-turn model (0.5.0, `git show 7902f12:models/otolith`):
an eight-view model's map is already the same for the photograph and its mirror image.
Usage: ``python experiments/otolith/flip_tta.py [models/otolith] [SEED ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.inference.factory import open_backend
from seawatch.models.otolith.evaluate import detection_metrics, score_images
from seawatch.models.otolith.head import OtolithDetector
from seawatch.models.otolith.synthetic import make_dataset


def report(name: str, labels: np.ndarray, scores: dict[str, np.ndarray]) -> None:
    for variant, s in scores.items():
        metrics = detection_metrics(labels, s, threshold=float("inf"))  # only the AUROCs
        per = ", ".join(f"{t} {v:.3f}" for t, v in metrics["auroc_per_type"].items())
        print(f"{name:10s} {variant:13s} AUROC {metrics['auroc']:.4f}  {per}")


def main() -> None:
    model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "models/otolith")
    card = load_card(model_dir)
    data = card.training.data
    backend = open_backend("onnxruntime", model_dir / ONNX_FILE, threads=2)
    detector = OtolithDetector(backend, card, max_batch=32)
    fresh = {
        f"seed {seed}": {"seed": seed, "n_normal": 400, "n_per_anomaly": 100}
        for seed in map(int, sys.argv[2:])
    }
    for split, spec in (fresh or {k: data[k] for k in ("validation", "test")}).items():
        images, labels = make_dataset(
            np.random.default_rng(int(spec["seed"])),
            n_normal=int(spec["n_normal"]),
            n_per_anomaly=int(spec["n_per_anomaly"]),
            size=int(data["render_size"]),
        )
        plain, maps = score_images(detector, images)
        _, flipped = score_images(detector, np.ascontiguousarray(images[:, :, ::-1]))
        mean = 0.5 * (maps + flipped[:, :, ::-1])
        flat = mean.reshape(len(mean), -1)
        scores = {
            "as exported": plain,
            "8 views max": flat.max(1),
            "8 views top16": np.sort(flat, 1)[:, -16:].mean(1),
        }
        report(split, np.asarray(labels), scores)
    backend.close()


if __name__ == "__main__":
    main()
