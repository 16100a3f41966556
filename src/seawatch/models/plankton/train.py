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
from seawatch.models.plankton.datasets import (
    LabelledSet,
    load_ecotaxa,
    load_image_folder,
    stratified_split,
)
from seawatch.models.plankton.evaluate import evaluate_artifact, unknown_threshold
from seawatch.models.plankton.export import OUTPUT_NAMES, check_parity, export_onnx, exported
from seawatch.models.plankton.finetune import MODES, schedule_for, transfer
from seawatch.models.plankton.network import PlanktonNet, describe
from seawatch.models.plankton.pretrained import load_backbone
from seawatch.models.plankton.selftrain import keep_better
from seawatch.models.plankton.synthetic_sets import (
    SEGMENTED,
    SEGMENTED_SHARE,
    SPLIT_SEED_OFFSETS,
    synthetic_split,
)
from seawatch.models.training import (
    log_line,
    optimise,
    seed_everything,
    select_device,
    training_progress,
)

NAME, VERSION = "plankton-cnn", "0.3.0"
LABEL_SMOOTHING = 0.05
USER_SPLIT = (0.70, 0.15, 0.15)


@dataclass(frozen=True, slots=True)
class PlanktonData:
    """Where the labelled images come from: the generator, an ImageFolder or EcoTaxa."""

    data_dir: Path | None = None
    ecotaxa: Path | None = None
    validated_only: bool = False
    n_per_class: int = 900
    val_per_class: int | None = None
    imbalance: float = 4.0
    segmented_share: float = SEGMENTED_SHARE
    val_dir: Path | None = None
    test_dir: Path | None = None
    unlabelled_dir: Path | None = None  # crops for self-training (a user's data only)

    @property
    def kind(self) -> str:
        """``synthetic``, ``image-folder`` or ``ecotaxa``."""
        if self.data_dir is not None and self.ecotaxa is not None:
            msg = "give either --data-dir or --ecotaxa, not both"
            raise ValueError(msg)
        return "image-folder" if self.data_dir else "ecotaxa" if self.ecotaxa else "synthetic"


@dataclass(frozen=True, slots=True)
class FitParams:
    """The optimisation schedule."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 4e-3
    balance: Balance = "sampler"
    finetune: Literal["auto", "linear", "last", "full"] = "auto"
    adaptive: bool = True  # a user's data: schedule from its size (explicit values win)


def load_splits(
    data: PlanktonData, *, size: int, seed: int, progress: Progress
) -> tuple[dict[str, LabelledSet], dict[str, object]]:
    """Train, validation and test sets, and the data summary for the card."""
    tasks: dict[str, int] = {}

    def advance(label: str, total: int, n: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total, info="")
        progress.advance(tasks[label], n)

    if data.kind == "synthetic":
        val_n = data.val_per_class or max(20, data.n_per_class // 3)
        splits, seg = {}, {}
        for split, n, imbalance in (
            ("train", data.n_per_class, data.imbalance),
            ("validation", val_n, 1.0),
            ("test", val_n, 1.0),
        ):
            splits[split], seg[split] = synthetic_split(
                split,
                n,
                seed=seed,
                size=size,
                segmented_share=data.segmented_share,
                imbalance=imbalance,
                advance=advance,
            )
        summary = {
            "source": "synthetic (seawatch.models.plankton.synthetic_sets.synthetic_split)",
            "train_per_class_mean": data.n_per_class,
            "eval_per_class": val_n,
            "train_imbalance": data.imbalance,
            "split_seeds": {k: seed + v for k, v in SPLIT_SEED_OFFSETS.items()},
            "segmented_share": data.segmented_share,
            "segmented": SEGMENTED | {"counts": seg},
        }
    else:
        total = progress.add_task("reading images", total=None, info="")
        loader_kwargs = {"size": size, "progress": lambda n: progress.advance(total, n)}
        if data.kind == "image-folder":
            everything = load_image_folder(data.data_dir, **loader_kwargs)
        else:
            everything = load_ecotaxa(
                data.ecotaxa, validated_only=data.validated_only, **loader_kwargs
            )
        splits, split = _user_splits(everything, data, size=size, seed=seed)
        summary = {
            "source": f"{data.kind}: {data.data_dir or data.ecotaxa}",
            "split": split,
            "unreadable_files": len(everything.skipped),
            "unreadable_examples": everything.skipped[:5],
        }
    summary |= {name: split.summary() for name, split in splits.items()}
    return splits, summary


def _user_splits(
    everything: LabelledSet, data: PlanktonData, *, size: int, seed: int
) -> tuple[dict[str, LabelledSet], dict[str, object]]:
    """Train / validation / test from a user's folders: given ones are used as they are;
    the rest is split off the training folder per class (70/15/15, 85/15 or none)."""
    given = {}
    for name, folder in (("validation", data.val_dir), ("test", data.test_dir)):
        if folder is not None:
            loaded = load_image_folder(folder, size=size)
            given[name] = _same_classes(loaded, everything.class_names, folder)
    missing = [n for n in ("validation", "test") if n not in given]
    fractions = {0: (1.0,), 1: (0.85, 0.15), 2: USER_SPLIT}[len(missing)]
    parts = stratified_split(everything.labels, fractions, seed)
    names = ("train", *missing)
    splits = {n: everything.subset(p) for n, p in zip(names, parts, strict=True)} | given
    split = {n: f"{f:.0%} of the training folder" for n, f in zip(names, fractions, strict=True)}
    split |= {
        n: f"given: {folder}"
        for n, folder in (("validation", data.val_dir), ("test", data.test_dir))
        if folder
    }
    return splits, split


def _same_classes(loaded: LabelledSet, names: list[str], folder: Path) -> LabelledSet:
    """``loaded`` relabelled to the training folder's class order; an unknown class fails."""
    extra = sorted(set(loaded.class_names) - set(names))
    if extra:
        msg = f"{folder} holds classes the training folder lacks: {extra}; add or remove them"
        raise ConfigError(msg)
    index = np.array([names.index(n) for n in loaded.class_names], np.int64)
    return LabelledSet(loaded.images, index[loaded.labels], names, loaded.source, loaded.sources)


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
    x, y = torch.from_numpy(train.images[:, None]), torch.from_numpy(train.labels)
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


def _transfer(
    train: LabelledSet,
    validation: LabelledSet,
    params: FitParams,
    pretrained: Path | None,
    seed: int,
    device: str,
    unlabelled: np.ndarray | None = None,
) -> tuple[PlanktonNet, list, dict[str, object]]:
    """A user's data: schedule from its size, modes tried from the start and chosen on
    validation macro-F1 (see :mod:`.finetune`); with unlabelled crops, then self-training
    (see :mod:`.selftrain`), kept if it wins on validation."""
    schedule = schedule_for(
        len(train),
        epochs=None if params.adaptive else params.epochs,
        batch=None if params.adaptive else params.batch_size,
    )
    modes = MODES if params.finetune == "auto" else (params.finetune,)
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
    tuning = {
        "start": str(pretrained) if pretrained else "scratch (random init)",
        "mode": done.mode,
        "validation_macro_f1_by_mode": done.validation_f1,
        "schedule": {
            "epochs": schedule.epochs,
            "batch_size": schedule.batch_size,
            "lr": schedule.lr,
        },
        "rule": "batch ~ n/8 in 16..128, epochs for ~300 steps in 10..300; "
        "mode by validation macro-F1",
    }
    model = done.model
    if unlabelled is not None:
        model, tuning["self_training"] = keep_better(
            model.to(device),
            done.validation_f1[done.mode],
            (train.images, train.labels),
            unlabelled,
            (validation.images, validation.labels),
            start=pretrained,
            mode=done.mode,
            seed=seed,
            device=device,
            schedule=schedule,
        )
    return model.to(device), [], tuning


def _unlabelled(data: PlanktonData, size: int) -> np.ndarray | None:
    """The crops under ``data.unlabelled_dir``, prepared like the labelled ones (None: none)."""
    if data.unlabelled_dir is None:
        return None
    if data.kind == "synthetic":
        raise ConfigError("--unlabelled-dir goes with --data-dir or --ecotaxa (your labels)")
    from seawatch.models.plankton.ssl_command import unlabelled_crops

    return unlabelled_crops(data.unlabelled_dir, size=size, option="--unlabelled-dir")[0]


def predict_logits(
    model: PlanktonNet, images: np.ndarray, device: str, batch: int = 256
) -> np.ndarray:
    """Pre-softmax scores (numpy N x C) for prepared uint8 crops."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            xb = torch.from_numpy(images[i : i + batch, None]).float().to(device)
            out.append(model.logits(xb).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def train_plankton(
    out_dir: Path,
    *,
    data: PlanktonData | None = None,
    params: FitParams | None = None,
    size: int = 64,
    seed: int = 0,
    device: str = "auto",
    pretrained: Path | None = None,
    command: str = "seawatch train plankton",
) -> ModelCard:
    """Train, calibrate, export and evaluate into ``out_dir``; return the model card.

    ``out_dir`` receives ``model.onnx``, ``card.json``, ``confusion.png`` and
    ``reliability.png`` (both on the test split, through ONNX Runtime).
    """
    data, params = data or PlanktonData(), params or FitParams()
    if params.epochs < 1 or params.batch_size < 1:
        msg = f"epochs and batch_size must be >= 1, got {params.epochs} and {params.batch_size}"
        raise ValueError(msg)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(device)
    seed_everything(seed)
    unlabelled = _unlabelled(data, size)
    with training_progress() as progress:
        splits, data_summary = load_splits(data, size=size, seed=seed, progress=progress)
        train, validation, test = splits["train"], splits["validation"], splits["test"]
        mean, std = float(train.images.mean() / 255.0), float(train.images.std() / 255.0)
        tuning: dict[str, object] | None = None
        if data.kind == "synthetic":
            model = PlanktonNet(len(train.class_names), mean=mean, std=std)
            backbone = load_backbone(model, pretrained) if pretrained else None
            model.to(device)
            history = fit(
                model, train, validation, params, seed=seed, device=device, progress=progress
            )
        else:
            model, history, tuning = _transfer(
                train, validation, params, pretrained, seed, device, unlabelled
            )
            mean, std = float(model.mean), float(model.std)
            backbone = backbone_card(pretrained) if pretrained else None
    val_logits = predict_logits(model, validation.images, device)
    temperature = fit_temperature(val_logits, validation.labels)
    model.set_temperature(temperature)
    threshold, unknown = unknown_threshold(scale(val_logits, temperature), validation.labels)
    onnx_path = export_onnx(model, out_dir / ONNX_FILE, size=size)
    real = test.images[:32, None].astype(np.float32)
    noise = np.random.default_rng(seed).uniform(0, 255, (8, 1, size, size)).astype(np.float32)
    graph = exported(model)
    parity = max(check_parity(graph, onnx_path, real), check_parity(graph, onnx_path, noise))
    val_pred = val_logits.argmax(1)
    metrics = {
        "validation": {
            "n": len(validation),
            "accuracy": round(float((val_pred == validation.labels).mean()), 4),
        },
        "calibration": {
            "method": "temperature scaling, NLL on validation (golden-section search on log T)",
            "temperature": round(temperature, 4),
            "val_nll_before": round(nll(val_logits, validation.labels), 4),
            "val_nll_after": round(nll(val_logits, validation.labels, temperature), 4),
        },
        "unknown": unknown,
        "onnx_parity_max_abs_diff": parity,
        "history": history,
    }
    if tuning is not None:
        metrics["fine_tuning"] = tuning
    save_backbone(model, out_dir, {"model": NAME, "version": VERSION, "command": command})
    card = ModelCard(
        task="plankton",
        name=NAME,
        version=VERSION,
        architecture=describe(model),
        input=InputSpec(size=size, channels=1, mean=mean, std=std),
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
            data=data_summary,
            batch_size=params.batch_size,
            optimizer=f"AdamW(lr={params.lr:g}, weight_decay=5e-4)",
            schedule="OneCycleLR (cosine), per batch",
            label_smoothing=LABEL_SMOOTHING,
            class_balance=params.balance,
            augmentation=AugmentParams().describe(),
            pretrained=backbone or "none (random init)",
            preprocessing="to_gray8 + prepare_roi (polarity to dark-on-light, pad square, resize)",
            torch=torch.__version__,
        ),
        metrics=metrics,
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.write(out_dir)
    test_metrics = evaluate_artifact(out_dir, test, out_dir, title=f"{NAME} {VERSION} test")
    card = card.model_copy(
        update={
            "metrics": {"split": "test (never seen in training or calibration)"}
            | test_metrics
            | metrics
        }
    )
    card.write(out_dir)
    return card
