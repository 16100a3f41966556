"""Fit the outlier-exposure scorer of a plankton artifact (:mod:`seawatch.contracts.ood_scorer`).

1. Banks: the penultimate features, the pooled third-stage map (graph output ``stage3``;
   ``stage3=False`` leaves it out) and the image statistics of the model's training split
   (the synthetic draw its card records), for the three kNN distances.
2. The network: in-distribution objects the classifier never trained on (a fresh draw of
   the ten taxa, ROIs and segmented crops, seed :data:`INSIDE_SEED`) against drawn outliers
   (:mod:`.outliers`: :data:`SHAPES` organisms of no taxon and :data:`CORRUPTED` training
   taxa through corrupted optics). An ensemble of five scikit-learn MLPs (64 ReLU units,
   early stopping, seeds 0-4; the mean of their logits), its weights stored as numpy arrays.
3. The threshold: softmax and score together flag ``target`` of the validation split, as
   :func:`.ood_fit.joint_threshold` sets it; the held-out calibration taxa are the check.

Every seed is a development seed (7_1xx_xxx); nothing of the test taxa or of the shifted
instrument is drawn. Needs scikit-learn (the ``train`` extra).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.image_stats import NAMES as STAT_NAMES
from seawatch.contracts.image_stats import image_stats
from seawatch.contracts.ood import OOD_FILE, _sha256
from seawatch.contracts.ood_scorer import METHOD, STAGE3_BANK, STATS_K, OodScorer
from seawatch.models.plankton.chimeras import chimera_set
from seawatch.models.plankton.novel import CALIBRATION_TAXA, novel_set
from seawatch.models.plankton.ood_fit import (
    CALIBRATION_PER_TAXON,
    CALIBRATION_SEED,
    TARGET,
    _splits,
    graph_arrays,
    joint_threshold,
)
from seawatch.models.plankton.outliers import corrupted_set, outlier_set
from seawatch.models.training import training_progress

INSIDE_SEED, INSIDE_PER_CLASS = 7_100_300, 300
SHAPES_SEED, SHAPES = 7_100_400, 6000
CORRUPTED_SEED, CORRUPTED = 7_100_410, 4000
CHIMERA_SEED = 7_100_420
HIDDEN, ALPHA, MEMBERS = 64, 1e-3, 5


def _stats(images: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [image_stats(images[i : i + 512]) for i in range(0, len(images), 512)]
    ) if len(images) else np.zeros((0, len(STAT_NAMES)), np.float32)  # fmt: skip


def _draws(card, progress, chimeras: int = 0) -> dict[str, np.ndarray]:
    """Every image set the fit reads (prepared crops)."""
    from seawatch.models.plankton.synthetic_sets import synthetic_split

    labels: dict[str, np.ndarray] = {}
    images = _splits(card, progress, labels)
    task = progress.add_task("draw scorer sets", total=None, info="")
    inside, _ = synthetic_split(
        "validation",
        INSIDE_PER_CLASS,
        seed=INSIDE_SEED,
        size=card.input.size,
        segmented_share=float(card.training.data.get("segmented_share", 0.4)),
    )
    images["inside"] = inside.images
    images["shapes"] = outlier_set(SHAPES, SHAPES_SEED, size=card.input.size)
    images["corrupted"] = corrupted_set(CORRUPTED, CORRUPTED_SEED, size=card.input.size)
    images["calibration_taxa"], _ = novel_set(
        CALIBRATION_PER_TAXON, CALIBRATION_SEED, taxa=CALIBRATION_TAXA, size=card.input.size
    )
    if chimeras:
        images["chimeras"] = chimera_set(images["train"], labels["train"], chimeras, CHIMERA_SEED)
    progress.update(task, total=1, completed=1, info=f"{sum(map(len, images.values()))} objects")
    return images


def _fit_network(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Standardisation and weights of the outlier classifier: :data:`MEMBERS` networks of
    :data:`HIDDEN` units (seeds 0..), stored as one layer of ``MEMBERS x HIDDEN`` units whose
    output is the mean of their logits (the same numbers, one product at serving time)."""
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    w1, b1, w2, b2 = [], [], [], []
    for seed in range(MEMBERS):
        mlp = MLPClassifier(
            (HIDDEN,), alpha=ALPHA, max_iter=300, early_stopping=True, random_state=seed
        )
        mlp.fit(z, y)
        w1.append(mlp.coefs_[0])
        b1.append(mlp.intercepts_[0])
        w2.append(mlp.coefs_[1][:, 0] / MEMBERS)
        b2.append(mlp.intercepts_[1][0] / MEMBERS)
    return {
        "in_mean": mean.astype(np.float32),
        "in_scale": scale.astype(np.float32),
        "w1": np.concatenate(w1, axis=1).astype(np.float32),
        "b1": np.concatenate(b1).astype(np.float32),
        "w2": np.concatenate(w2).astype(np.float32),
        "b2": np.float32(sum(b2)),
    }


# Candidate softmax bars for the joint rule, besides the card's ``unknown_confidence``: the
# score reads the top-1 probability and the entropy too, so the softmax rule alone (3.5 % of
# validation at the card's 0.58) left it half a point of a 4 % budget. On development draw
# 7,150,001: calibration taxa 60 % -> 74 %, shifted instrument 78 % -> 86 % with no floor.
FLOORS = (0.5, 0.4, 0.3, 0.2, 0.0)


def choose_floor(
    softmax: float,
    validation: tuple[np.ndarray, np.ndarray],
    calibration: tuple[np.ndarray, np.ndarray],
    target: float,
) -> tuple[float, float, list[dict[str, float]]]:
    """The softmax bar and score threshold of the joint rule: for each bar (the card's and
    :data:`FLOORS` under it) the score threshold at which both rules flag ``target`` of the
    validation split (top-1 probability, score); the bar that flags most calibration taxa
    (ties: the higher bar). Returns (bar, threshold, the table)."""
    table = []
    for bar in sorted({softmax, *(f for f in FLOORS if f < softmax)}, reverse=True):
        threshold = joint_threshold(validation[1], validation[0] < bar, target)
        caught = (calibration[0] < bar) | (calibration[1] > threshold)
        table.append(
            {"softmax_floor": bar, "threshold": threshold, "calibration_taxa": float(caught.mean())}
        )
    best = max(table, key=lambda row: (row["calibration_taxa"], row["softmax_floor"]))
    return best["softmax_floor"], best["threshold"], table


def fit_oe(
    model_dir: Path,
    *,
    command: str,
    target: float = TARGET,
    stage3: bool = True,
    chimeras: int = 0,
    known_outliers: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit the scorer and its threshold; write ``ood.npz`` and the card's ``ood`` field.
    ``stage3``: with the stage-3 inputs (the graph's ``stage3`` output, its kNN distance).
    ``chimeras``: that many two-taxon chimeras of the training split (:mod:`.chimeras`) join
    the outliers; ``known_outliers``: prepared crops of organisms the model must call
    unknown (a user's other taxa) join them too."""
    from seawatch.models.plankton.reexport import add_features_output

    model_dir = Path(model_dir)
    reexport = add_features_output(model_dir, command=command)
    card = load_card(model_dir)
    onnx_path = model_dir / ONNX_FILE
    softmax = float(card.thresholds.get("unknown_confidence", 0.0))
    with training_progress() as progress:
        images = _draws(card, progress, chimeras)
        if known_outliers is not None and len(known_outliers):
            images["known_outliers"] = np.asarray(known_outliers, np.uint8)
        wanted = ("probs", "features", "stage3") if stage3 else ("probs", "features")
        graph = {}
        for name, x in images.items():
            task = progress.add_task(f"features {name}", total=len(x), info="")
            graph[name] = graph_arrays(
                onnx_path, x, wanted, lambda n, t=task: progress.advance(t, n)
            )
        probs = {name: out["probs"] for name, out in graph.items()}
        feats = {name: out["features"] for name, out in graph.items()}
        s3 = {name: out.get("stage3") for name, out in graph.items()}
        task = progress.add_task("image statistics", total=None, info="")
        arrays, blank = banks(feats["train"], images["train"], s3["train"] if stage3 else None)
        progress.update(task, total=1, completed=1, info=f"{len(feats['train'])} training objects")
    extra = [name for name in ("chimeras", "known_outliers") if name in images]
    signal = {
        name: blank.inputs(feats[name], probs[name], images[name], s3[name])
        for name in ("inside", "shapes", "corrupted", "validation", "calibration_taxa", *extra)
    }
    outside = np.concatenate([signal[name] for name in ("shapes", "corrupted", *extra)])
    x = np.concatenate([signal["inside"], outside])
    y = np.r_[np.zeros(len(signal["inside"])), np.ones(len(outside))]
    # the banks rounded to float16 as ood.npz stores them, before the threshold is set
    scorer = OodScorer(OodScorer(arrays | _fit_network(x, y)).arrays())

    def scores(name: str) -> np.ndarray:
        return scorer.scores(feats[name], probs[name], images[name], s3[name])

    floor, threshold, floors = choose_floor(
        softmax,
        (probs["validation"].max(1), scores("validation")),
        (probs["calibration_taxa"].max(1), scores("calibration_taxa")),
        target,
    )
    val_soft = probs["validation"].max(1) < floor
    scorer = scorer.with_threshold(threshold)
    path = model_dir / OOD_FILE
    scorer.save(path)

    def rate(name: str) -> dict[str, float]:
        soft = probs[name].max(1) < floor
        flagged = scores(name) > threshold
        return {
            "unknown": round(float((soft | flagged).mean()), 4),
            "softmax_alone": round(float(soft.mean()), 4),
        }

    spec: dict[str, Any] = {
        "file": OOD_FILE,
        "sha256": _sha256(path),
        "method": METHOD,
        "k": 1,
        "threshold": threshold,
        "softmax_floor": floor,
        "score": f"mean logit of 'outlier' from {MEMBERS} MLPs ({HIDDEN} units) over "
        "L2-normalised penultimate features, their kNN cosine distance to training, "
        "top-1 probability, softmax "
        f"entropy, {len(STAT_NAMES)} standardised image statistics and their kNN "
        f"(k={STATS_K}) distance to training"
        + (
            ", the pooled third-stage map (graph output stage3) and its kNN cosine distance "
            "to training"
            if stage3
            else ""
        )
        + " (outlier exposure, Hendrycks et al. 2019)",
        "inputs": {"features": int(feats["train"].shape[1]), "image_stats": list(STAT_NAMES)}
        | ({"stage3": _stage3_spec(s3["train"])} if stage3 else {}),
        "bank": {
            "objects": len(feats["train"]),
            "banks": ["features", "image_stats"] + (["stage3"] if stage3 else []),
            "source": "the card's synthetic training split",
            "dtype": "float16",
        },
        "fit": {
            "inside": {"seed": INSIDE_SEED, "objects": len(signal["inside"])},
            "outliers": {
                "drawn_organisms": {"seed": SHAPES_SEED, "objects": SHAPES},
                "corrupted_optics": {"seed": CORRUPTED_SEED, "objects": CORRUPTED},
            }
            | ({"chimeras": {"seed": CHIMERA_SEED, "objects": chimeras}} if chimeras else {})
            | (
                {"known_outliers": {"objects": len(images["known_outliers"])}}
                if "known_outliers" in images
                else {}
            ),
            "network": {"members": MEMBERS, "hidden": HIDDEN, "alpha": ALPHA, "seeds": "0.."},
        },
        "calibration": {
            "rule": f"top-1 probability under softmax_floor or score > threshold flags "
            f"{target:.0%} of validation; the floor (of {FLOORS} and the card's "
            "unknown_confidence) flags most calibration taxa",
            "floors": floors,
            "target_unknown_rate": target,
            "validation": {"objects": len(val_soft)} | rate("validation"),
            "held_out_taxa": {
                "taxa": list(CALIBRATION_TAXA),
                "seed": CALIBRATION_SEED,
                "objects": len(images["calibration_taxa"]),
            }
            | rate("calibration_taxa"),
        },
        "command": command,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    files = dict(card.files) | {"ood": OOD_FILE}
    card = card.model_copy(update={"ood": spec, "files": files})
    card.write(model_dir)
    load_card(model_dir)
    return {"reexport": reexport, "ood": spec}


def banks(
    train_features: np.ndarray, train_images: np.ndarray, train_stage3: np.ndarray | None
) -> tuple[dict[str, np.ndarray], OodScorer]:
    """The scorer's banks (training features, image statistics, stage-3 numbers when given)
    and a scorer with placeholder weights whose :meth:`OodScorer.inputs` builds the network's
    inputs."""
    train_stats = _stats(train_images)
    mean, std = train_stats.mean(0), train_stats.std(0) + 1e-6
    arrays = {
        "bank": train_features,
        "stats_mean": mean.astype(np.float32),
        "stats_std": std.astype(np.float32),
        "stats_bank": ((train_stats - mean) / std).astype(np.float32),
        "threshold": np.float64(0.0),
    }
    width = train_features.shape[1] + 4 + len(STAT_NAMES)
    if train_stage3 is not None:
        arrays[STAGE3_BANK] = train_stage3
        width += 1 + train_stage3.shape[1]
    return arrays, OodScorer(arrays | _identity(width))


def _stage3_spec(bank: np.ndarray) -> dict[str, Any]:
    """The card's record of the stage-3 inputs."""
    return {
        "output": "stage3",
        "numbers": int(bank.shape[1]),
        "what": "mean and standard deviation of each channel of the third residual stage's "
        "map, as inputs, and log(1e-3 + their kNN cosine distance) to the training split's",
        "bank_objects": len(bank),
        "bank_array": STAGE3_BANK,
    }


def _identity(width: int) -> dict[str, np.ndarray]:
    """Placeholder network weights: only :meth:`OodScorer.inputs` is used with them."""
    return {
        "in_mean": np.zeros(width, np.float32),
        "in_scale": np.ones(width, np.float32),
        "w1": np.zeros((width, 1), np.float32),
        "b1": np.zeros(1, np.float32),
        "w2": np.zeros(1, np.float32),
        "b2": np.float32(0.0),
    }


__all__ = ["banks", "fit_oe"]
