"""Re-distil the otolith student on a user's normal specimens; calibrate; write a new release.

``seawatch train otolith --normal-dir DIR --model models/otolith --out DIR2``: the detector's
student learnt to reproduce its teacher on synthetic normals only, so another scanner, stain or
light makes *every* specimen look anomalous. No anomalies are needed to fix that, only normals:

1. the user's normals (:func:`~.calibrate.normal_images`) are split (by ``seed``) into a
   training share and held-out normals (at least :data:`MIN_HELD_OUT`);
2. the detector is rebuilt from its graph (:func:`~.reexport.rebuild_detector`: the frozen
   teacher and the student, BatchNorm folded, i.e. frozen while fine-tuning) and checked
   against it (:func:`~.reexport.check_rebuilt`);
3. the student is distilled again, from its weights, on the training normals
   (:func:`~.distil.distil`, the same MKD loss and augmentation, a lower learning rate); the
   teacher and its feature scales stay as they are;
4. the map's stage norms are set on the held-out normals, the graph exported (parity-checked)
   and its threshold calibrated on the held-out normals through the served graph
   (:func:`~.calibrate.artifact_scores`, as ``otolith-calibrate`` does);
5. the card records the data, the start, the schedule and the held-out normals' scores before
   and after; its version (``<parent>.redistilYYYYMMDD`` by default) gives a new release.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seawatch.contracts.card import ONNX_FILE, ModelCard, TrainingSummary, load_card, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.models.otolith import distil as D
from seawatch.models.otolith.calibrate import artifact_scores, normal_images
from seawatch.models.otolith.evaluate import calibrate_threshold
from seawatch.models.otolith.export import export_otolith, export_parity
from seawatch.models.otolith.head import THRESHOLD_KEY
from seawatch.models.otolith.network import STAGES, OtolithMKD, check_views, describe
from seawatch.models.otolith.plan import prepared
from seawatch.models.otolith.reexport import check_rebuilt, rebuild_detector
from seawatch.models.otolith.serving_views import serving_dir, trained_views
from seawatch.models.otolith.teacher import TEACHER_FILE
from seawatch.models.otolith.teacher_artifact import TEACHER_CARD
from seawatch.models.training import seed_everything, select_device, training_progress

NAME = "otolith-mkd-redistilled"
MIN_HELD_OUT = 10  # normals the stage norms and the threshold are set on
MIN_TRAIN = 10


@dataclass(frozen=True, slots=True)
class RedistilConfig:
    """What ``train otolith --normal-dir`` may set (recorded in the card)."""

    held_out: float = 0.3
    steps: int = 200
    epochs: int | None = None  # default: as many as make about ``steps`` steps
    batch_size: int = 16
    lr: float = 2e-3  # the synthetic recipe's: a new domain moves the student far
    views: int | None = None  # test-time views of the new graph (default: the parent's)
    far: float = 0.01


def redistil(
    model_dir: Path,
    normal_dir: Path,
    out: Path,
    *,
    config: RedistilConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
    version: str | None = None,
    command: str = "seawatch train otolith --normal-dir",
) -> ModelCard:
    """Re-distil the detector at ``model_dir`` on ``normal_dir``; write the artifact ``out``."""
    started = time.perf_counter()
    config = config or RedistilConfig()
    model_dir, out = Path(model_dir), Path(out)
    if out.resolve() == model_dir.resolve():
        msg = f"--out {out} is the start model; give another directory for the new release"
        raise ConfigError(msg)
    parent = load_card(model_dir)
    if parent.task != "otolith":
        msg = f"{model_dir} is a {parent.task!r} model; re-distillation is for otolith detectors"
        raise ConfigError(msg)
    views = config.views or trained_views(parent)
    check_views(views)
    images, skipped = normal_images(normal_dir)
    train_idx, held_idx = _split(len(images), config.held_out, seed)
    size = parent.input.size
    to_input = prepared(size)
    train = np.stack([to_input(images[i]) for i in train_idx])
    held = np.stack([to_input(images[i]) for i in held_idx])
    held_bgr = [images[i] for i in held_idx]
    device = select_device(device)
    seed_everything(seed)
    model = _rebuilt(model_dir, parent, held[:2], size)
    start_dir = serving_dir(model_dir, parent, views)
    start_card = load_card(start_dir)
    before = artifact_scores(start_dir, start_card, held_bgr)
    model.views = views
    epochs = config.epochs or max(1, round(config.steps / max(1, len(train) // config.batch_size)))
    with training_progress() as progress:
        history = D.distil(
            model,
            train,
            held,
            None,
            label="re-distil",
            epochs=epochs,
            batch_size=min(config.batch_size, len(train)),
            lr=config.lr,
            seed=seed,
            device=device,
            progress=progress,
        )
    _set_stage_norms(model, held, device)
    model = model.cpu().eval()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_otolith(model, out / ONNX_FILE, size)
    parity = export_parity(model, onnx_path, held[:4], seed=seed)
    files = _copy_teacher(model_dir, out, parent)
    version = version or f"{parent.version}.redistil{datetime.now(UTC):%Y%m%d}"
    provisional = _card(parent, model, onnx_path, version, {THRESHOLD_KEY: 0.0}, files)
    after = artifact_scores(out, provisional, held_bgr)
    threshold = calibrate_threshold(after, config.far)
    old = float(start_card.thresholds[THRESHOLD_KEY])
    metrics = {
        "redistillation": {
            "held_out_normals": len(held_idx),
            "threshold_before": round(old, 6),
            "false_alarm_rate_before": round(float((before > old).mean()), 4),
            "false_alarm_rate_after": round(float((after > threshold).mean()), 4),
            "score_median_before": round(float(np.median(before)), 4),
            "score_median_after": round(float(np.median(after)), 4),
            "validation_loss_first_last": [history[0]["val_loss"], history[-1]["val_loss"]],
        },
        "validation": {"top_k": model.top_k, "note": "top_k kept from the start model"},
        "calibration": {
            "n": len(after),
            "target_false_alarm_rate": config.far,
            "on": "held-out normals of --normal-dir",
        },
        "onnx_parity_max_abs_diff": parity,
        "history": history,
    }
    training = _training(
        parent, config, command, seed, device, views, epochs, time.perf_counter() - started,
        data={
            "source": "normal folder",
            "normal_dir": str(normal_dir),
            "normal_specimens": len(images),
            "unreadable": len(skipped),
            "train": len(train_idx),
            "held_out": len(held_idx),
            "split_seed": seed,
        },
        start={"model": str(model_dir), "release": parent.release, "views": views,
               "onnx_sha256": parent.onnx_sha256},
    )  # fmt: skip
    thresholds = {THRESHOLD_KEY: round(threshold, 6), f"{THRESHOLD_KEY}_target_far": config.far}
    card = _card(parent, model, onnx_path, version, thresholds, files, training, metrics)
    card.write(out)
    return load_card(out)


def _split(n: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Training and held-out indices of ``n`` normals (``held_out`` share, at least 10)."""
    if not 0.0 < held_out < 1.0:
        msg = f"--held-out must be between 0 and 1 (a share of the normals), got {held_out}"
        raise ConfigError(msg)
    n_held = max(MIN_HELD_OUT, round(n * held_out))
    if n - n_held < MIN_TRAIN:
        msg = (
            f"--normal-dir: {n} normal specimens leave {n - n_held} to train on after holding "
            f"out {n_held}; re-distillation needs {MIN_TRAIN + MIN_HELD_OUT} or more"
        )
        raise ConfigError(msg)
    order = np.random.default_rng([seed, 51]).permutation(n).tolist()
    return sorted(order[n_held:]), sorted(order[:n_held])


def _rebuilt(model_dir: Path, card: ModelCard, batch: np.ndarray, size: int) -> OtolithMKD:
    """The detector rebuilt from its graph, proven to be it (its own views, ONNX Runtime)."""
    model = rebuild_detector(model_dir, card)
    with tempfile.TemporaryDirectory(prefix="seawatch-redistil-") as scratch:
        check_rebuilt(
            model, model_dir / ONNX_FILE, Path(scratch) / ONNX_FILE, batch.astype(np.float32),
            size=size,
        )  # fmt: skip
    return model


@torch.no_grad()
def _set_stage_norms(model: OtolithMKD, normals: np.ndarray, device: str) -> None:
    """Each stage's discrepancy divided by its mean on the held-out normals."""
    means = [float(m.mean()) for m in D.stage_maps(model, normals, device)]
    model.stage_norm.copy_(torch.tensor([max(m, 1e-8) for m in means[:STAGES]]))


def _copy_teacher(model_dir: Path, out: Path, parent: ModelCard) -> dict[str, str]:
    """The teacher's weights and card beside the new graph, as in the parent (the card's files)."""
    files = {}
    for role, name in (("teacher_weights", TEACHER_FILE), ("teacher_card", TEACHER_CARD)):
        if parent.files.get(role) == name and (model_dir / name).is_file():
            if (model_dir / name).resolve() != (out / name).resolve():
                shutil.copyfile(model_dir / name, out / name)
            files[role] = name
    return files


def _training(
    parent: ModelCard,
    config: RedistilConfig,
    command: str,
    seed: int,
    device: str,
    views: int,
    epochs: int,
    seconds: float,
    *,
    data: dict[str, Any],
    start: dict[str, Any],
) -> TrainingSummary:
    extra = parent.training.model_extra or {}
    plan = dict(extra.get("plan") or {}) | {"views": views}  # what rebuild_detector reads
    return TrainingSummary(
        command=command,
        seed=seed,
        data=data,
        epochs=epochs,
        seconds=round(seconds, 1),
        device=device,
        plan=plan,
        start=start,
        schedule={
            "steps": config.steps,
            "batch_size": config.batch_size,
            "optimizer": f"AdamW(lr={config.lr:g}, weight_decay=1e-4), OneCycle",
            "trained": "student only, from its weights (BatchNorm folded); teacher and its "
            "feature scales frozen",
            "stage_norms": "mean map per stage on the held-out normals",
        },
        parent_training=parent.training.command,
        torch=torch.__version__,
    )


def _card(
    parent: ModelCard,
    model: OtolithMKD,
    onnx_path: Path,
    version: str,
    thresholds: dict[str, float],
    files: dict[str, str],
    training: TrainingSummary | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelCard:
    return ModelCard(
        task="otolith",
        name=NAME,
        version=version,
        architecture=describe(model) + " (re-distilled; BatchNorm folded)",
        input=parent.input,
        output=parent.output,
        outputs=parent.outputs,
        files=files,
        thresholds=thresholds,
        training=training or parent.training,
        metrics=metrics or {"validation": {"top_k": model.top_k}},
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def summary_line(out: Path, card: ModelCard) -> str:
    """One line: the held-out normals before and after, the new threshold and release."""
    r = card.metrics["redistillation"]
    return (
        f"wrote {out} ({card.release}): {r['held_out_normals']} held-out normals: median score "
        f"{r['score_median_before']} -> {r['score_median_after']}, the old threshold flagged "
        f"{r['false_alarm_rate_before']:.1%}; new threshold {card.thresholds[THRESHOLD_KEY]} "
        f"flags {r['false_alarm_rate_after']:.1%}; seconds={card.training.seconds}"
    )


__all__ = ["MIN_HELD_OUT", "MIN_TRAIN", "NAME", "RedistilConfig", "redistil", "summary_line"]
