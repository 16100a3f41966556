"""Train the plankton classifier and write a model artifact (ONNX, card, evaluation plots).

Data come from the synthetic generator (three seeds: train / validation / test), from an
ImageFolder tree or from an EcoTaxa export. A user's ``--val-dir`` and ``--test-dir`` are
respected: the training folder is then trained on whole; what is not given is split off the
training folder per class (seeded). Training uses class-balanced sampling (or loss weights)
and plankton augmentation. On a user's data it starts from the best backbone the project has
(:mod:`.backbone`; ``--pretrained none`` for scratch) with a schedule sized to the data and
the fine-tuning mode chosen on validation (:mod:`.finetune`); the synthetic generator trains
from scratch with the fixed schedule the committed model was made with. Validation fits the
calibration temperature and then the ``unknown`` threshold; the test split, never seen
before, is scored through ONNX Runtime on the exported graph, the one the daemon serves (the
same code as ``seawatch evaluate``).
``seawatch train plankton`` is the command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from seawatch.contracts.card import ONNX_FILE, InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.preprocess import nchw
from seawatch.models.plankton.augment import AugmentParams, augment
from seawatch.models.plankton.backbone import (
    BACKBONE_CARD,
    BACKBONE_FILE,
    backbone_card,
    save_backbone,
)
from seawatch.models.plankton.balance import (
    Balance,
    balanced_indices,
    effective_number_weights,
)
from seawatch.models.plankton.calibration import fit_temperature, nll, scale
from seawatch.models.plankton.crossval import cross_validate
from seawatch.models.plankton.datasets import LabelledSet, planes
from seawatch.models.plankton.evaluate import (
    evaluate_artifact,
    evaluation_report,
    unknown_threshold,
)
from seawatch.models.plankton.export import OUTPUT_NAMES, check_parity, export_onnx, exported
from seawatch.models.plankton.finetune import MODES, new_model, schedule_for, train_mode, transfer
from seawatch.models.plankton.network import PlanktonNet, describe
from seawatch.models.plankton.pretrained import load_backbone
from seawatch.models.plankton.selftrain import SelfTrainParams
from seawatch.models.plankton.splits import PlanktonData, Splits, load_splits
from seawatch.models.plankton.unlabelled import UnlabelledMethod, learn_from_unlabelled
from seawatch.models.training import (
    log_line,
    optimise,
    seed_everything,
    select_device,
    training_progress,
)

NAME, VERSION = "plankton-cnn", "0.3.0"
LABEL_SMOOTHING = 0.05


@dataclass(frozen=True, slots=True)
class FitParams:
    """The optimisation schedule."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 4e-3
    balance: Balance = "sampler"
    finetune: Literal["auto", "linear", "last", "full"] = "auto"
    adaptive: bool = True  # a user's data: schedule from its size (explicit values win)
    unlabelled_method: UnlabelledMethod = "self-training"  # what --unlabelled-dir does
    self_training: SelfTrainParams | None = None  # its rounds and thresholds (None: defaults)


def _epoch_order(labels: np.ndarray, balance: Balance, rng: np.random.Generator) -> np.ndarray:
    return balanced_indices(labels, rng) if balance == "sampler" else rng.permutation(len(labels))


def fit(
    model: PlanktonNet,
    train: LabelledSet,
    validation: LabelledSet,
    params: FitParams,
    *,
    seed: int,
    device: str,
    progress: Progress,
) -> list[dict[str, float]]:
    """The training loop; returns per-epoch loss and validation accuracy and macro recall."""
    x, y = torch.from_numpy(planes(train.images)), torch.from_numpy(train.labels)
    n_classes = len(train.class_names)
    steps = max(1, (len(x) + params.batch_size - 1) // params.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=max(8, params.epochs * steps), pct_start=0.25
    )
    weights = None
    if params.balance == "loss":
        weights = torch.tensor(
            effective_number_weights(train.labels, n_classes), dtype=torch.float32
        )
    loss_fn = nn.CrossEntropyLoss(
        weight=None if weights is None else weights.to(device), label_smoothing=LABEL_SMOOTHING
    )
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, params.epochs + 1):
        task = progress.add_task(f"epoch {epoch}/{params.epochs}", total=steps, info="")
        model.train()
        order = torch.from_numpy(_epoch_order(train.labels, params.balance, rng))
        total = 0.0
        for step in range(steps):
            idx = order[step * params.batch_size : (step + 1) * params.batch_size]
            xb = augment(x[idx].float(), generator).to(device)
            loss = loss_fn(model.logits(xb), y[idx].to(device))
            optimise(loss, optimizer, schedule)
            total += float(loss.detach()) * len(idx)
            progress.update(task, advance=1, info=f"loss {total / ((step + 1) * len(idx)):.3f}")
        pred = predict_logits(model, validation.images, device).argmax(1)
        right = pred == validation.labels
        recall = [right[validation.labels == c].mean() for c in np.unique(validation.labels)]
        row = {
            "epoch": epoch,
            "loss": round(total / (steps * params.batch_size), 4),
            "val_accuracy": round(float(right.mean()), 4),
            "val_macro_recall": round(float(np.mean(recall)), 4),
        }
        history.append(row)
        progress.update(task, info=f"loss {row['loss']:.3f}  val acc {row['val_accuracy']:.3f}")
        log_line(progress, f"{row} seconds={time.perf_counter() - started:.1f}")
    return history


@dataclass
class _Fitted:
    """A trained model, its history, how it was tuned, and the held-out logits that fit
    its calibration (validation, or out-of-fold under cross-validation)."""

    model: PlanktonNet
    history: list
    tuning: dict[str, object] | None
    held_logits: np.ndarray
    held: LabelledSet
    cross_validation: dict[str, object] | None = None
    backbone: dict[str, object] | None = None


def _fit_synthetic(
    splits: Splits, params: FitParams, pretrained: Path | None, seed: int, device: str, progress
) -> _Fitted:
    """The generator's data: from scratch (or ``pretrained``), the fixed schedule."""
    train, validation = splits.train, splits.sets["validation"]
    mean, std = float(train.images.mean() / 255.0), float(train.images.std() / 255.0)
    model = PlanktonNet(len(train.class_names), mean=mean, std=std)
    backbone = load_backbone(model, pretrained) if pretrained else None
    model.to(device)
    history = fit(model, train, validation, params, seed=seed, device=device, progress=progress)
    logits = predict_logits(model, validation.images, device)
    return _Fitted(model, history, None, logits, validation, backbone=backbone)


def _transfer(
    splits: Splits,
    params: FitParams,
    pretrained: Path | None,
    seed: int,
    device: str,
    progress: Progress,
    unlabelled: np.ndarray | None = None,
) -> _Fitted:
    """A user's data: schedule from its size, modes tried from the start and chosen on
    validation macro-F1 (see :mod:`.finetune`), or on the mean macro-F1 of K folds for a
    small set (see :mod:`.crossval`; the kept mode is then trained on every image); with
    unlabelled crops, then consistency training or self-training (see :mod:`.unlabelled`),
    kept if it wins on validation."""
    train = splits.train
    schedule = schedule_for(
        len(train),
        epochs=None if params.adaptive else params.epochs,
        batch=None if params.adaptive else params.batch_size,
    )
    modes = MODES if params.finetune == "auto" else (params.finetune,)
    chosen = "mean macro-F1 of the folds" if splits.folds else "validation macro-F1"
    tuning: dict[str, object] = {
        "start": str(pretrained) if pretrained else "scratch (random init)",
        "schedule": {
            "epochs": schedule.epochs,
            "batch_size": schedule.batch_size,
            "lr": schedule.lr,
        },
        "rule": f"batch ~ n/8 in 16..128, epochs for ~300 steps in 10..300; mode by {chosen}",
    }
    if splits.folds and unlabelled is not None:
        msg = (
            "--unlabelled-dir needs a validation split to keep or refuse the self-trained "
            f"model, and this set is cross-validated ({splits.folds} folds): give --val-dir, "
            "or --folds 0"
        )
        raise ConfigError(msg)
    if splits.folds:
        tried = len(modes) if pretrained else 1
        task = progress.add_task("cross-validation", total=tried * splits.folds + 1, info="")
        cv = cross_validate(
            train.images,
            train.labels,
            train.class_names,
            folds=splits.folds,
            start=pretrained,
            schedule=schedule,
            modes=modes,
            seed=seed,
            device=device,
            advance=lambda info: progress.update(task, advance=1, info=info),
        )
        torch.manual_seed(seed)
        model, _ = new_model(len(train.class_names), train.images, pretrained)
        train_mode(
            model,
            train.images,
            train.labels,
            cv.mode,
            schedule,
            seed=seed,
            device=device,
            pretrained=pretrained is not None,
        )
        progress.update(task, advance=1, info=f"final model: {cv.mode} on all {len(train)}")
        summary = cv.summary(train.class_names)
        spread = f"{summary['macro_f1_mean']} +- {summary['macro_f1_std']}"
        log_line(progress, f"cross-validation macro-F1 {spread}")
        tuning |= {"mode": cv.mode, "cross_validation_macro_f1_by_mode": cv.mean_by_mode}
        backbone = backbone_card(pretrained) if pretrained else None
        return _Fitted(model.to(device), [], tuning, cv.oof_logits, train, summary, backbone)
    validation = splits.sets["validation"]
    done = transfer(
        (train.images, train.labels),
        (validation.images, validation.labels),
        len(train.class_names),
        start=pretrained,
        modes=modes,
        seed=seed,
        device=device,
        schedule=schedule,
    )
    tuning |= {"mode": done.mode, "validation_macro_f1_by_mode": done.validation_f1}
    model = done.model.to(device)
    if unlabelled is not None:
        key = "self_training" if params.unlabelled_method == "self-training" else "consistency"
        model, tuning[key] = learn_from_unlabelled(
            model,
            done.validation_f1[done.mode],
            (train.images, train.labels),
            unlabelled,
            (validation.images, validation.labels),
            method=params.unlabelled_method,
            start=pretrained,
            mode=done.mode,
            schedule=schedule,
            seed=seed,
            device=device,
            self_training=params.self_training,
        )
        model = model.to(device)
    logits = predict_logits(model, validation.images, device)
    backbone = backbone_card(pretrained) if pretrained else None
    return _Fitted(model, [], tuning, logits, validation, backbone=backbone)


def _unlabelled(data: PlanktonData, train: LabelledSet) -> np.ndarray | None:
    """The crops under ``data.unlabelled_dir``, prepared like the labelled ones (None: none)."""
    if data.unlabelled_dir is None:
        return None
    if train.channels != 1:
        msg = (
            "--unlabelled-dir reads gray crops and this model takes colour; self-training of "
            "colour models is not built yet: leave out --unlabelled-dir or give --colour gray"
        )
        raise ConfigError(msg)
    from seawatch.models.plankton.ssl_command import unlabelled_crops

    size = int(train.images.shape[1])
    return unlabelled_crops(data.unlabelled_dir, size=size, option="--unlabelled-dir")[0]


def predict_logits(
    model: PlanktonNet, images: np.ndarray, device: str, batch: int = 256
) -> np.ndarray:
    """Pre-softmax scores (numpy N x C) for prepared uint8 crops."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            xb = torch.from_numpy(planes(images[i : i + batch])).float().to(device)
            out.append(model.logits(xb).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def train_plankton(
    out_dir: Path,
    *,
    data: PlanktonData | None = None,
    params: FitParams | None = None,
    seed: int = 0,
    device: str = "auto",
    pretrained: Path | None = None,
    command: str = "seawatch train plankton",
) -> ModelCard:
    """Train, calibrate, export and evaluate into ``out_dir``; return the model card.

    ``out_dir`` receives ``model.onnx``, ``card.json``, ``confusion.png`` and
    ``reliability.png`` (on the test split through ONNX Runtime; under cross-validation
    without a test folder, on the out-of-fold predictions). The input's size and channels
    are the data's (64 px gray for the generator; chosen from a user's images).
    """
    data, params = data or PlanktonData(), params or FitParams()
    if data.unlabelled_dir is not None and data.kind == "synthetic":
        raise ConfigError("--unlabelled-dir goes with --data-dir or --ecotaxa (your labels)")
    if params.epochs < 1 or params.batch_size < 1:
        msg = f"epochs and batch_size must be >= 1, got {params.epochs} and {params.batch_size}"
        raise ValueError(msg)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(device)
    seed_everything(seed)
    with training_progress() as progress:
        splits = load_splits(data, seed=seed, progress=progress)
        if data.kind == "synthetic":
            done = _fit_synthetic(splits, params, pretrained, seed, device, progress)
        else:
            unlabelled = _unlabelled(data, splits.train)
            done = _transfer(splits, params, pretrained, seed, device, progress, unlabelled)
    train, model = splits.train, done.model
    size, channels = int(train.images.shape[1]), train.channels
    mean, std = float(model.mean), float(model.std)
    if data.kind == "synthetic":  # the card keeps the float64 values the net was built from
        mean, std = float(train.images.mean() / 255.0), float(train.images.std() / 255.0)
    temperature = fit_temperature(done.held_logits, done.held.labels)
    model.set_temperature(temperature)
    held_probs = scale(done.held_logits, temperature)
    threshold, unknown = unknown_threshold(held_probs, done.held.labels)
    onnx_path = export_onnx(model, out_dir / ONNX_FILE, size=size, channels=channels)
    sample = splits.sets.get("test", train).images[:32]
    real = nchw(sample)
    noise = np.random.default_rng(seed).uniform(0, 255, (8, channels, size, size))
    graph = exported(model)
    parity = max(
        check_parity(graph, onnx_path, real),
        check_parity(graph, onnx_path, noise.astype(np.float32)),
    )
    held_name = "out_of_fold" if done.cross_validation else "validation"
    metrics = {
        held_name: {
            "n": len(done.held),
            "accuracy": round(float((held_probs.argmax(1) == done.held.labels).mean()), 4),
        },
        "calibration": {
            "method": "temperature scaling, NLL on "
            + ("the out-of-fold logits" if done.cross_validation else "validation")
            + " (golden-section search on log T)",
            "temperature": round(temperature, 4),
            "val_nll_before": round(nll(done.held_logits, done.held.labels), 4),
            "val_nll_after": round(nll(done.held_logits, done.held.labels, temperature), 4),
        },
        "unknown": unknown,
        "onnx_parity_max_abs_diff": parity,
        "history": done.history,
    }
    if done.tuning is not None:
        metrics["fine_tuning"] = done.tuning
    if done.cross_validation is not None:
        metrics["cross_validation"] = done.cross_validation
    save_backbone(model, out_dir, {"model": NAME, "version": VERSION, "command": command})
    card = ModelCard(
        task="plankton",
        name=NAME,
        version=VERSION,
        architecture=describe(model),
        input=InputSpec(
            size=size,
            channels=channels,
            mean=mean,
            std=std,
            preprocessing="seawatch.contracts.preprocess."
            + ("prepare_roi_colour" if channels == 3 else "prepare_roi"),
        ),
        outputs=list(OUTPUT_NAMES),
        files={"backbone": BACKBONE_FILE, "backbone_card": BACKBONE_CARD},
        class_names=list(train.class_names),
        thresholds={"unknown_confidence": threshold, "temperature": round(temperature, 4)},
        training=TrainingSummary(
            command=command,
            seed=seed,
            epochs=params.epochs,
            seconds=round(time.perf_counter() - start, 1),
            device=device,
            data=splits.summary,
            batch_size=params.batch_size,
            optimizer=f"AdamW(lr={params.lr:g}, weight_decay=5e-4)",
            schedule="OneCycleLR (cosine), per batch",
            label_smoothing=LABEL_SMOOTHING,
            class_balance=params.balance,
            augmentation=AugmentParams().describe(),
            pretrained=done.backbone or "none (random init)",
            preprocessing=(
                "to_colour8 + prepare_roi_colour (BGR; polarity to dark-on-light, pad square, "
                "resize)"
                if channels == 3
                else "to_gray8 + prepare_roi (polarity to dark-on-light, pad square, resize)"
            ),
            torch=torch.__version__,
        ),
        metrics=metrics,
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.write(out_dir)
    title = f"{NAME} {VERSION}"
    if "test" in splits.sets:
        split = "test (never seen in training or calibration)"
        scored = evaluate_artifact(out_dir, splits.sets["test"], out_dir, title=f"{title} test")
    else:
        split = (
            f"out-of-fold ({splits.folds}-fold cross-validation; each image scored by the fold "
            "model that never saw it; no test folder given)"
        )
        scored = evaluation_report(
            held_probs, train, threshold=threshold, out_dir=out_dir, title=f"{title} out-of-fold"
        )
    card = card.model_copy(update={"metrics": {"split": split} | scored | metrics})
    card.write(out_dir)
    return card


__all__ = ["FitParams", "PlanktonData", "fit", "predict_logits", "train_plankton"]
