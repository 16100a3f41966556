"""Re-score a committed model artifact on a small fresh synthetic draw, through ONNX Runtime.

Each task's draw comes from the generator its card names, with a seed no split of the card
used, and is scored by the code ``seawatch evaluate`` runs; the numbers are what the card
claims, up to sampling noise. A few seconds each on two cores.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card

#: Seeds of the fresh draws: none is a seed (or a split offset from one) any card records.
FRESH_SEEDS = {"plankton": 7_700_011, "otolith": 7_700_029, "fish": 7_700_043}


def rescore_plankton(model_dir: Path, *, n_per_class: int = 120) -> dict[str, Any]:
    """Accuracy and macro-F1 on a fresh test-like split (ROIs and segmented crops)."""
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.plankton.evaluate import classification_metrics
    from seawatch.models.plankton.synthetic_sets import synthetic_split

    card = load_card(model_dir)
    data, _ = synthetic_split(
        "test", n_per_class, seed=FRESH_SEEDS["plankton"], size=card.input.size
    )
    remap = np.array([card.class_names.index(c) for c in data.class_names])
    with OnnxRuntimeBackend(Path(model_dir) / ONNX_FILE, threads=2) as backend:
        probs = np.concatenate(
            [
                backend.run(data.images[i : i + 256, None].astype(np.float32))
                for i in range(0, len(data), 256)
            ]
        )
    metrics = classification_metrics(remap[data.labels], probs.argmax(1), card.class_names)
    return {"n": len(data), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


@functools.cache
def otolith_draw(n_normal: int, render_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh specimens, each defect type a quarter as many as the normals (as the card's test
    set), shared by the graphs of one artifact (its view variants)."""
    from seawatch.models.otolith.synthetic import make_dataset

    return make_dataset(
        np.random.default_rng(FRESH_SEEDS["otolith"]),
        n_normal=n_normal,
        n_per_anomaly=max(1, n_normal // 4),
        size=render_size,
    )


def rescore_otolith(model_dir: Path, *, n_normal: int = 60) -> dict[str, Any]:
    """Image AUROC and the false-alarm rate at the card's threshold on fresh specimens."""
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.otolith.evaluate import detection_metrics, score_images
    from seawatch.models.otolith.head import OtolithDetector

    card = load_card(model_dir)
    images, labels = otolith_draw(n_normal, int(card.training.data["render_size"]))
    with OnnxRuntimeBackend(Path(model_dir) / ONNX_FILE, threads=2) as backend:
        detector = OtolithDetector(backend, card, max_batch=32)
        scores, _ = score_images(detector, images)
    metrics = detection_metrics(labels, scores, detector.threshold)
    return {
        "n": len(labels),
        "auroc": metrics["auroc"],
        "false_alarm_rate": metrics["false_alarm_rate"],
        "detection_rate": metrics["detection_rate"],
    }


def rescore_fish(model_dir: Path, *, queries: int = 2, unknown: int = 6) -> dict[str, Any]:
    """Top-1 on known individuals and new-vs-known AUROC with fresh enrolment and query
    renders of the card's individuals (``queries`` per known, ``unknown`` per new one)."""
    from seawatch.models.fish.data import FishData
    from seawatch.models.fish.evaluate import onnx_embedder, run_protocol

    card = load_card(model_dir)
    data = dataclasses.replace(
        FishData.from_summary(card.training.data),
        query_per_individual=queries,
        unknown_per_individual=unknown,
        calibration_per_individual=2,
    )
    result, _ = run_protocol(
        onnx_embedder(Path(model_dir) / ONNX_FILE, threads=2),
        data,
        threshold=card.thresholds["match_similarity"],
        stream_seed=FRESH_SEEDS["fish"],
    )
    return {
        "n": result["open_set"]["queries_known"] + result["open_set"]["queries_new"],
        "top1": result["known"]["all"]["top1"],
        "new_vs_known_auroc": result["open_set"]["new_vs_known_auroc"],
    }


__all__ = ["FRESH_SEEDS", "otolith_draw", "rescore_fish", "rescore_otolith", "rescore_plankton"]
