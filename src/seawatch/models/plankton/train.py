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
from datetime import UTC, datetime
from pathlib import Path

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
    save_backbone,
)
from seawatch.models.plankton.balance import (
    Balance,
    balanced_indices,
    effective_number_weights,
)
from seawatch.models.plankton.calibration import fit_temperature, nll, scale
from seawatch.models.plankton.datasets import LabelledSet, planes
from seawatch.models.plankton.evaluate import (
    evaluate_artifact,
    evaluation_report,
    unknown_threshold,
)
from seawatch.models.plankton.export import OUTPUT_NAMES, check_parity, export_onnx, exported
from seawatch.models.plankton.network import PlanktonNet, describe
from seawatch.models.plankton.pretrained import load_backbone
from seawatch.models.plankton.splits import PlanktonData, Splits, load_splits
from seawatch.models.plankton.user_fit import (
    FitParams,
    Fitted,
    fit_transfer,
    predict_logits,
    unlabelled_crops_for,
)
from seawatch.models.plankton.views_choice import CARD_FIELD as VIEWS_FIELD
from seawatch.models.plankton.views_choice import choose_views
from seawatch.models.training import (
    log_line,
    optimise,
    seed_everything,
    select_device,
    training_progress,
)

NAME, VERSION = "plankton-cnn", "0.3.0"
LABEL_SMOOTHING = 0.05


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


def _fit_synthetic(
    splits: Splits, params: FitParams, pretrained: Path | None, seed: int, device: str, progress
) -> Fitted:
    """The generator's data: from scratch (or ``pretrained``), the fixed schedule."""
    train, validation = splits.train, splits.sets["validation"]
    mean, std = float(train.images.mean() / 255.0), float(train.images.std() / 255.0)
    model = PlanktonNet(len(train.class_names), mean=mean, std=std)
    backbone = load_backbone(model, pretrained) if pretrained else None
    model.to(device)
    history = fit(model, train, validation, params, seed=seed, device=device, progress=progress)
    logits = predict_logits(model, validation.images, device)
    return Fitted(model, history, None, logits, validation, backbone=backbone)


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
        if params.views != 1 and splits.folds:
            msg = (
                f"--views {params.views} is measured on a validation split, and this set is "
                f"cross-validated ({splits.folds} folds): give --val-dir, or --folds 0, or "
                "leave out --views"
            )
            raise ConfigError(msg)
        if data.kind == "synthetic":
            done = _fit_synthetic(splits, params, pretrained, seed, device, progress)
        else:
            unlabelled = unlabelled_crops_for(data, splits.train)
            done = fit_transfer(splits, params, pretrained, seed, device, progress, unlabelled)
    train, model = splits.train, done.model
    size, channels = int(train.images.shape[1]), train.channels
    mean, std = float(model.mean), float(model.std)
    if data.kind == "synthetic":  # the card keeps the float64 values the net was built from
        mean, std = float(train.images.mean() / 255.0), float(train.images.std() / 255.0)
    views, views_record, held_logits = 1, None, done.held_logits
    if params.views != 1:
        views, views_record, held_logits = choose_views(model, done.held, params.views, device)
    temperature = fit_temperature(held_logits, done.held.labels)
    model.set_temperature(temperature)
    held_probs = scale(held_logits, temperature)
    threshold, unknown = unknown_threshold(held_probs, done.held.labels)
    onnx_path = export_onnx(model, out_dir / ONNX_FILE, size=size, channels=channels, views=views)
    sample = splits.sets.get("test", train).images[:32]
    real = nchw(sample)
    noise = np.random.default_rng(seed).uniform(0, 255, (8, channels, size, size))
    graph = exported(model, views)
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
            "val_nll_before": round(nll(held_logits, done.held.labels), 4),
            "val_nll_after": round(nll(held_logits, done.held.labels, temperature), 4),
        },
        "unknown": unknown,
        "onnx_parity_max_abs_diff": parity,
        "history": done.history,
    }
    if done.tuning is not None:
        metrics["fine_tuning"] = done.tuning
    if done.cross_validation is not None:
        metrics["cross_validation"] = done.cross_validation
    if views_record is not None:
        metrics["test_time_views"] = views_record
    save_backbone(model, out_dir, {"model": NAME, "version": VERSION, "command": command})
    card = ModelCard(
        task="plankton",
        name=NAME,
        version=VERSION,
        architecture=describe(model)
        + (f"; the graph averages {views} dihedral views of each crop" if views > 1 else ""),
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
            **{VIEWS_FIELD: views},
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
