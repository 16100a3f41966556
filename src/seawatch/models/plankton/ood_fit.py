"""Fit the out-of-distribution score of a plankton artifact (``seawatch train plankton-ood``).

1. A graph without the ``features`` output is re-exported from the artifact's own weights
   (:mod:`.reexport`; ``probs`` checked equal to the old graph's).
2. The bank: the penultimate features of the model's training split (the synthetic draw its
   card records: same seed, sizes and imbalance), L2-normalised.
3. The threshold: the two "unknown" rules together (softmax under ``unknown_confidence``, or
   score over the threshold) flag ``target`` of the validation split (in-distribution
   objects the model never trained on). The committed target is 4 %, one point under the
   issue's 5 % budget for sampling noise.
4. The held-out check: the share of the calibration taxa (:data:`.novel.CALIBRATION_TAXA`,
   taxa the model never learned, drawn by the training instrument) it flags. The test taxa
   and the shifted instrument are left for ``benchmarks/ood.py``.

ONNX Runtime and numpy for the features; torch only for a re-export.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.ood import OOD_FILE, OodDetector
from seawatch.models.onnx_export import ort_session
from seawatch.models.plankton.novel import CALIBRATION_TAXA, novel_set
from seawatch.models.training import training_progress

K, TARGET = 1, 0.04
CALIBRATION_SEED, CALIBRATION_PER_TAXON = 7_100_120, 150
BATCH = 256


def graph_features(
    onnx_path: Path, images: np.ndarray, advance=None
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and penultimate features of prepared crops (uint8 N x S x S)."""
    out = graph_arrays(onnx_path, images, ("probs", "features"), advance)
    return out["probs"], out["features"]


def graph_arrays(
    onnx_path: Path, images: np.ndarray, names: tuple[str, ...], advance=None
) -> dict[str, np.ndarray]:
    """The graph outputs ``names`` of prepared crops (uint8 N x S x S), each N x ..."""
    session = ort_session(onnx_path)
    have = [o.name for o in session.get_outputs()]
    missing = [name for name in names if name not in have]
    if missing:
        raise ConfigError(f"{onnx_path} has no {missing} output; re-export it first")
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for i in range(0, len(images), BATCH):
        batch = images[i : i + BATCH, None].astype(np.float32)
        for part, array in zip(parts, session.run(list(names), {"image": batch}), strict=True):
            part.append(array)
        if advance is not None:
            advance(len(batch))
    return {name: np.concatenate(part) for name, part in zip(names, parts, strict=True)}


def joint_threshold(scores: np.ndarray, softmax_unknown: np.ndarray, target: float) -> float:
    """The lowest score threshold at which ``softmax_unknown | scores > t`` flags at most
    ``target`` of the objects (the softmax rule alone over target: the highest score)."""
    order = np.argsort(-scores)
    # flagged(t) when t sits just under order[j]'s score: the softmax ones + those not yet
    extra = np.cumsum(~softmax_unknown[order])  # objects the score adds, j+1 highest
    total = softmax_unknown.sum() + extra
    allowed = np.nonzero(total <= target * len(scores))[0]
    if len(allowed) == 0:
        return float(scores.max())
    j = int(allowed[-1])
    # the threshold sits between the j-th and the (j+1)-th highest score
    below = scores[order[j + 1]] if j + 1 < len(order) else scores[order[j]] - 1e-6
    return float((scores[order[j]] + below) / 2.0)


def _splits(card, progress, labels: dict | None = None) -> dict[str, np.ndarray]:
    """The training and validation images of the card's synthetic draw (their labels into
    ``labels`` when given)."""
    from seawatch.models.plankton.synthetic_sets import synthetic_split

    data = card.training.data
    if "train_per_class_mean" not in data or "eval_per_class" not in data:
        msg = "the card records no synthetic training draw; fit on a synthetic model's artifact"
        raise ConfigError(msg)
    out = {}
    for split, n in (
        ("train", data["train_per_class_mean"]),
        ("validation", data["eval_per_class"]),
    ):
        task = progress.add_task(f"draw {split}", total=None, info="")
        subset, _ = synthetic_split(
            split,
            int(n),
            seed=card.training.seed,
            size=card.input.size,
            segmented_share=float(data.get("segmented_share", 0.4)),
            imbalance=float(data.get("train_imbalance", 1.0)) if split == "train" else 1.0,
        )
        progress.update(task, total=1, completed=1, info=f"{len(subset.labels)} objects")
        out[split] = subset.images
        if labels is not None:
            labels[split] = np.asarray(subset.labels)
    return out


def fit_ood(model_dir: Path, *, command: str, k: int = K, target: float = TARGET) -> dict:
    """Re-export if needed, fit the bank and the threshold, write ``ood.npz`` and the card."""
    from seawatch.models.plankton.reexport import add_features_output

    model_dir = Path(model_dir)
    reexport = add_features_output(model_dir, command=command)
    card = load_card(model_dir)
    onnx_path = model_dir / ONNX_FILE
    softmax = float(card.thresholds.get("unknown_confidence", 0.0))
    with training_progress() as progress:
        images = _splits(card, progress)
        calib, _ = novel_set(
            CALIBRATION_PER_TAXON, CALIBRATION_SEED, taxa=CALIBRATION_TAXA, size=card.input.size
        )
        images["calibration_taxa"] = calib
        feats, probs = {}, {}
        for name, x in images.items():
            task = progress.add_task(f"features {name}", total=len(x), info="")
            probs[name], feats[name] = graph_features(
                onnx_path, x, lambda n, t=task: progress.advance(t, n)
            )
    bank = OodDetector(feats["train"], k=k, threshold=0.0)
    val_scores = bank.scores(feats["validation"])
    val_soft = probs["validation"].max(1) < softmax
    threshold = joint_threshold(val_scores, val_soft, target)
    detector = OodDetector(feats["train"], k=k, threshold=threshold)
    path = model_dir / OOD_FILE
    sha = detector.save(path)

    def rate(name: str) -> dict[str, float]:
        soft = probs[name].max(1) < softmax
        flagged = detector.flags(feats[name])
        return {
            "unknown": round(float((soft | flagged).mean()), 4),
            "softmax_alone": round(float(soft.mean()), 4),
        }

    spec: dict[str, Any] = {
        "file": OOD_FILE,
        "sha256": sha,
        "method": "knn_cosine",
        "k": k,
        "threshold": threshold,
        "score": "1 - cosine similarity of L2-normalised penultimate features to the k-th "
        "nearest training object (Sun et al. 2022)",
        "bank": {
            "objects": len(feats["train"]),
            "dim": int(feats["train"].shape[1]),
            "source": "the card's synthetic training split",
            "dtype": "float16",
        },
        "calibration": {
            "rule": f"softmax unknown or score > threshold flags {target:.0%} of validation",
            "target_unknown_rate": target,
            "validation": {"objects": len(val_scores)} | rate("validation"),
            "held_out_taxa": {
                "taxa": list(CALIBRATION_TAXA),
                "seed": CALIBRATION_SEED,
                "objects": len(calib),
            }
            | rate("calibration_taxa"),
        },
        "command": command,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    files = dict(card.files) | {"ood": OOD_FILE}
    card = card.model_copy(update={"ood": spec, "files": files})
    card.write(model_dir)
    load_card(model_dir)  # the card still reads and matches its graph
    return {"reexport": reexport, "ood": spec}


__all__ = ["fit_ood", "graph_arrays", "graph_features", "joint_threshold"]
