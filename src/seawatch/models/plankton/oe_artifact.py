"""A plankton artifact fine-tuned with outlier exposure (:mod:`.oe_train`), written beside the
one it starts from (``seawatch train plankton-oe``).

1. The source artifact's network is rebuilt from its own weights (:mod:`.reexport`) and its
   training and validation splits redrawn from its card (same seeds and sizes).
2. Outliers are drawn at :data:`.oe_train.SHAPES_SEED` / :data:`.oe_train.CORRUPTED_SEED`
   (development seeds, not the scorer's); the last stages and the head are fine-tuned.
3. The temperature and the ``unknown`` threshold are refitted on validation as training fits
   them; the graph is exported with ``(probs, features)``, checked against torch, and the
   backbone written. The card keeps the source's training summary and records the
   fine-tuning under ``metrics.outlier_exposure`` (validation accuracy before and after).
   The source's OOD score does not fit the new features: it is dropped, and the caller
   refits it (:func:`.ood_oe_fit.fit_oe`).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, load_card, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.oe_train import CORRUPTED_SEED, SHAPES_SEED, OeParams, finetune_oe

SKIPPED = ("ood.npz", "confusion.png", "reliability.png", "evaluation.json")


def _scores(net, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro recall of ``net`` on labelled crops."""
    from seawatch.models.plankton.train import predict_logits

    pred = predict_logits(net, images, "cpu").argmax(1)
    right = pred == labels
    recall = [right[labels == c].mean() for c in np.unique(labels)]
    return {
        "accuracy": round(float(right.mean()), 4),
        "macro_recall": round(float(np.mean(recall)), 4),
    }


def _outliers(params: OeParams, size: int) -> np.ndarray:
    from seawatch.models.plankton.outliers import corrupted_set, outlier_set

    parts = [
        outlier_set(params.shapes, SHAPES_SEED, size=size),
        corrupted_set(params.corrupted, CORRUPTED_SEED, size=size),
    ]
    return np.concatenate(parts)


def build_oe_artifact(source: Path, out: Path, params: OeParams, *, command: str) -> dict[str, Any]:
    """Fine-tune ``source``'s classifier with outlier exposure; write the artifact to ``out``
    (without an OOD score). Returns the card's ``outlier_exposure`` record."""
    from seawatch.models.plankton.backbone import save_backbone
    from seawatch.models.plankton.calibration import fit_temperature, scale
    from seawatch.models.plankton.evaluate import unknown_threshold
    from seawatch.models.plankton.export import (
        OUTPUT_NAMES,
        check_parity,
        export_onnx,
        exported,
    )
    from seawatch.models.plankton.reexport import rebuild_network
    from seawatch.models.plankton.synthetic_sets import synthetic_split
    from seawatch.models.plankton.train import predict_logits
    from seawatch.models.plankton.views_choice import card_views
    from seawatch.models.training import training_progress

    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        msg = f"--out {out} is the source artifact; write the fine-tuned model to a new folder"
        raise ConfigError(msg)
    card = load_card(source)
    if card.input.channels != 1:
        raise ConfigError("outlier exposure draws gray outliers; the model must take gray crops")
    net, views = rebuild_network(source), card_views(card)
    size, data = card.input.size, card.training.data
    with training_progress() as progress:
        labelled = {
            split: synthetic_split(
                split,
                int(data["train_per_class_mean" if split == "train" else "eval_per_class"]),
                seed=card.training.seed,
                size=size,
                segmented_share=float(data.get("segmented_share", 0.4)),
                imbalance=float(data.get("train_imbalance", 1.0)) if split == "train" else 1.0,
            )[0]
            for split in ("train", "validation")
        }
        train, val = labelled["train"], labelled["validation"]
        before = _scores(net, val.images, val.labels)
        outliers = _outliers(params, size)
        history = finetune_oe(net, train.images, train.labels, outliers, params, progress)
    after = _scores(net, val.images, val.labels)
    logits = predict_logits(net, val.images, "cpu", views=views)
    temperature = fit_temperature(logits, val.labels)
    net.set_temperature(temperature)
    threshold, _ = unknown_threshold(scale(logits, temperature), val.labels)
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name not in SKIPPED:
            shutil.copyfile(path, out / path.name)
    onnx_path = export_onnx(net, out / ONNX_FILE, size=size, channels=1, views=views)
    check_parity(exported(net, views), onnx_path, val.images[:64, None].astype(np.float32))
    save_backbone(net, out, {"model": card.name, "version": card.version, "command": command})
    record = {
        "method": "outlier exposure fine-tuning (Hendrycks et al. 2019): cross-entropy on the "
        "training taxa + weight x cross-entropy to uniform on drawn outliers",
        "source": {"model": card.release, "onnx_sha256": card.onnx_sha256},
        "params": params.describe(),
        "outliers": {
            "drawn_organisms": {"seed": SHAPES_SEED, "objects": params.shapes},
            "corrupted_optics": {"seed": CORRUPTED_SEED, "objects": params.corrupted},
        },
        "validation_before": before,
        "validation_after": after,
        "history": history,
        "command": command,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    files = {k: v for k, v in card.files.items() if k != "ood"}
    thresholds = dict(card.thresholds) | {
        "unknown_confidence": threshold,
        "temperature": round(temperature, 4),
    }
    new = card.model_copy(
        update={
            "ood": None,
            "files": files,
            "thresholds": thresholds,
            "outputs": list(OUTPUT_NAMES),
            "metrics": {"outlier_exposure": record},
            "onnx_sha256": sha256_file(onnx_path),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    new.write(out)
    load_card(out)
    return record


__all__ = ["build_oe_artifact"]
