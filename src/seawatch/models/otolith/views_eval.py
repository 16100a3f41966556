"""Measure each view count of an otolith artifact: threshold, AUROC, specimens per second.

Every number comes from the graph as served (ONNX Runtime, through the daemon's own head,
:class:`~seawatch.models.otolith.head.OtolithDetector`), on the draws the card records:

- threshold: the card's procedure (``calibrate_threshold`` on the calibration normals, the
  card's seed and size, for the card's target false-alarm rate), once per view count: the
  score is a mean over fewer maps, so its scale changes with the views;
- test metrics: the card's test draw (seed and sizes of its evaluation), reported, never used
  to choose;
- the choice of the default views: a fresh draw of the test set's design
  (:data:`SELECTION_OFFSET`), drawn for this question only, as the eight views themselves
  were chosen (README); the card's 200-specimen validation split is too small to resolve
  differences of 0.005;
- throughput: specimens per second of ``infer`` on batches of the head's default
  ``max_batch`` (8 specimens), at 1 thread and at every core: the median of timed calls, the
  best of interleaved rounds (this VM is shared; see :func:`time_variants`).

The rule (:func:`recommend`): on a CPU, the fewest views whose selection AUROC is within
:data:`AUROC_TOLERANCE` of the best (compute grows with the views, one for one); on a GPU, the
best (a batch of 64 views of 128 px is a few milliseconds there, so accuracy costs nothing the
otolith rate, one specimen every few seconds per scanner, would notice; not measured here).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.otolith.evaluate import (
    auroc,
    calibrate_threshold,
    detection_metrics,
    score_images,
)
from seawatch.models.otolith.head import THRESHOLD_KEY, OtolithDetector, prepare_otolith
from seawatch.models.otolith.synthetic import ANOMALY_TYPES, NORMAL, make_dataset
from seawatch.task_settings import DEFAULT_TASKS

#: Seed offset of the draw the default views are chosen on (after the card's offsets).
SELECTION_OFFSET = 5_000_011
#: AUROC a CPU deployment gives up for fewer views (the gap issue 26 calls not worth 8x).
AUROC_TOLERANCE = 0.005
#: Specimens per inference call in the throughput runs: the otolith task's default max_batch.
BATCH = int(DEFAULT_TASKS["otolith"]["max_batch"])
RULE = (
    f"cpu: the fewest views whose selection AUROC is within {AUROC_TOLERANCE} of the best; "
    "gpu: the best selection AUROC"
)
Advance = Callable[[str, int, int], None]  # (bar, done, its total)


@dataclass(frozen=True, slots=True)
class Draws:
    """The rendered sets (BGR renders, scored through the head's own preparation)."""

    calibration: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    selection: np.ndarray
    selection_labels: np.ndarray
    seeds: dict[str, Any]


def draw_sets(card: ModelCard, advance: Advance, *, scale: float = 1.0) -> Draws:
    """Render the card's calibration and test draws and the fresh selection draw (``scale``
    shrinks every set, for tests)."""
    data = card.training.data
    size = int(data["render_size"])
    cal, test = data["calibration"], data["test"]

    def n(value: Any) -> int:
        return max(1, round(int(value) * scale))

    def render(name: str, seed: int, n_normal: int, n_per: int) -> tuple[np.ndarray, np.ndarray]:
        return make_dataset(
            np.random.default_rng(seed),
            n_normal=n_normal,
            n_per_anomaly=n_per,
            size=size,
            progress=lambda k: advance(name, k, n_normal + n_per * len(ANOMALY_TYPES)),
        )

    selection_seed = int(card.training.seed) + SELECTION_OFFSET
    used = {int(v["seed"]) for v in data.values() if isinstance(v, dict) and "seed" in v}
    if selection_seed in used:
        msg = f"selection seed {selection_seed} is one of the card's draws {sorted(used)}"
        raise ValueError(msg)
    calibration, _ = render("calibration", int(cal["seed"]), n(cal["n_normal"]), 0)
    t_normal, t_per = n(test["n_normal"]), n(test["n_per_anomaly"])
    test_images, test_labels = render("test", int(test["seed"]), t_normal, t_per)
    selection, selection_labels = render("selection", selection_seed, t_normal, t_per)
    seeds = {
        "calibration": {"seed": int(cal["seed"]), "n_normal": len(calibration)},
        "test": {"seed": int(test["seed"]), "n_normal": t_normal, "n_per_anomaly": t_per},
        "selection": {
            "seed": selection_seed,
            "n_normal": t_normal,
            "n_per_anomaly": t_per,
            "used_for": "choosing the default views (a fresh draw: not the test draw)",
        },
    }
    return Draws(calibration, test_images, test_labels, selection, selection_labels, seeds)


def score_variant(
    directory: Path, card: ModelCard, draws: Draws, far: float, advance: Advance
) -> dict[str, Any]:
    """Threshold (calibration normals), test metrics and selection AUROC of one graph."""
    provisional = card.model_copy(update={"thresholds": {THRESHOLD_KEY: 0.0}})
    with OnnxRuntimeBackend(directory / ONNX_FILE, threads=os.cpu_count() or 1) as backend:
        detector = OtolithDetector(backend, provisional, max_batch=32)

        def scores(images: np.ndarray, name: str) -> np.ndarray:
            return score_images(detector, images, progress=lambda k: advance(name, k, len(images)))[
                0
            ]

        calibration = scores(draws.calibration, "score calibration")
        threshold = calibrate_threshold(calibration, far)
        test = scores(draws.test, "score test")
        selection = scores(draws.selection, "score selection")
    selection_metrics = detection_metrics(draws.selection_labels, selection, threshold)
    return {
        "threshold": round(threshold, 6),
        "calibration_n": len(calibration),
        "calibration_false_alarm_rate": round(float((calibration > threshold).mean()), 4),
        "test": detection_metrics(draws.test_labels, test, threshold),
        "selection": {
            "auroc": round(auroc(draws.selection_labels != NORMAL, selection), 4),
            "detection_rate": selection_metrics["detection_rate"],
            "false_alarm_rate": selection_metrics["false_alarm_rate"],
        },
    }


def throughput(
    onnx_path: Path,
    card: ModelCard,
    inputs: np.ndarray,
    threads: int,
    *,
    min_s: float = 3.0,
    min_calls: int = 5,
) -> dict[str, float]:
    """Specimens per second of the head's ``infer`` on ``inputs`` (BATCH specimens), at
    ``threads``: two warm-up calls, then at least ``min_calls`` calls and ``min_s`` seconds;
    the median."""
    with OnnxRuntimeBackend(onnx_path, threads=threads) as backend:
        detector = OtolithDetector(backend, card, max_batch=len(inputs))
        for _ in range(2):
            detector.infer(inputs)
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < min_calls or time.perf_counter() - start < min_s:
            t0 = time.perf_counter()
            detector.infer(inputs)
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "specimens_per_s": round(len(inputs) / median, 2),
        "ms_per_batch": round(median * 1e3, 1),
        "calls": len(times),
    }


def timing_inputs(card: ModelCard) -> np.ndarray:
    """BATCH prepared specimens (normal and defective) of the card's test generator."""
    seed = int(card.training.data["test"]["seed"])
    renders, _ = make_dataset(
        np.random.default_rng(seed), n_normal=BATCH // 2, n_per_anomaly=1, size=256
    )
    return np.stack([prepare_otolith(im, card.input.size) for im in renders[:BATCH]])


def time_variants(
    paths: Mapping[int, Path],
    card: ModelCard,
    threads: tuple[int, ...],
    advance: Advance,
    *,
    rounds: int = 3,
    min_s: float = 3.0,
    min_calls: int = 5,
) -> dict[int, dict[str, dict[str, Any]]]:
    """:func:`throughput` of every graph at every thread count, in ``rounds`` interleaved
    rounds (a neighbour's burst then hits every view count alike); per graph and thread
    count, the best round (the least disturbed) with every round's specimens/s."""
    inputs = timing_inputs(card)
    runs: dict[int, dict[str, list[dict[str, float]]]] = {
        v: {str(t): [] for t in threads} for v in paths
    }
    total = rounds * len(threads) * len(paths)
    for _ in range(rounds):
        for t in threads:
            for views, path in paths.items():
                runs[views][str(t)].append(
                    throughput(path, card, inputs, t, min_s=min_s, min_calls=min_calls)
                )
                advance("timing", 1, total)
    return {
        views: {
            t: max(rs, key=lambda r: r["specimens_per_s"])
            | {"rounds": [r["specimens_per_s"] for r in rs]}
            for t, rs in per.items()
        }
        for views, per in runs.items()
    }


def recommend(choices: Mapping[int, Mapping[str, Any]]) -> dict[str, int]:
    """The default views per backend class, by :data:`RULE`, from the selection AUROC."""
    aurocs = {n: float(c["selection"]["auroc"]) for n, c in choices.items()}
    best = max(aurocs.values())
    cpu = min(n for n, a in aurocs.items() if a >= best - AUROC_TOLERANCE - 1e-12)
    gpu = min(n for n, a in aurocs.items() if a == best)
    return {"cpu": cpu, "gpu": gpu}


def machine() -> dict[str, Any]:
    """What the throughput was measured on."""
    import platform

    import onnxruntime

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = [x for x in cpuinfo.read_text().splitlines() if x.startswith("model name")]
        model = lines[0].split(":", 1)[1].strip() if lines else ""
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "onnxruntime": onnxruntime.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


__all__ = [
    "AUROC_TOLERANCE",
    "BATCH",
    "RULE",
    "SELECTION_OFFSET",
    "Draws",
    "draw_sets",
    "machine",
    "recommend",
    "score_variant",
    "throughput",
    "time_variants",
    "timing_inputs",
]
