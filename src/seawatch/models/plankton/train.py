"""Train the plankton classifier on synthetic data and write a model artifact.

``python -m seawatch.models.plankton.train --out models/plankton`` generates a training set
and a held-out validation set (other seeds), each a mix of class-balanced single-object ROI
renders and objects cut from synthetic full frames by the daemon's own segmentation (what
the pipeline serves for full frames), trains :class:`PlanktonNet` with AdamW and a one-cycle
schedule, picks the ``unknown`` confidence threshold on validation, exports ``model.onnx``
(checked against ONNX Runtime), draws ``confusion.png`` and writes ``card.json`` with
metrics for the whole validation set and for its ROI and segmented parts. Seeds are fixed,
so the same command gives the same data and model.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from seawatch.models.card import ONNX_FILE, InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.models.plankton._segmented import match_rule
from seawatch.models.plankton.evaluate import (
    classification_metrics,
    draw_confusion,
    source_metrics,
    unknown_threshold,
)
from seawatch.models.plankton.export import check_parity, export_onnx
from seawatch.models.plankton.network import PlanktonNet, describe
from seawatch.models.plankton.synthetic import TAXA, make_dataset, make_segmented_dataset

NAME, VERSION = "plankton-cnn-synthetic", "0.2.0"
DEFAULT_COMMAND = "python -m seawatch.models.plankton.train"
VAL_SEED_OFFSET = 1_000_003  # validation data come from a different generator stream
SEGMENTED_SEED_OFFSET = 2_000_029  # segmented full frames: yet another stream
SEGMENTED_SHARE = 0.4  # share of the samples cut from full frames (the rest: ROI renders)
CROPS_PER_FRAME = 30  # segmented crops one 1280 x 960 frame yields, on average (measured)
SEGMENTED = {"dark_fraction": 0.5, "jpeg_fraction": 0.5, "min_iou": 0.3, "min_inside": 0.8}
MAX_PARTS = 2
LABEL_SMOOTHING = 0.05


def train_plankton(
    out_dir: Path,
    *,
    n_per_class: int = 900,
    epochs: int = 8,
    size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 128,
    command: str = DEFAULT_COMMAND,
    val_per_class: int | None = None,
    lr: float = 4e-3,
    segmented_share: float = SEGMENTED_SHARE,
) -> ModelCard:
    """Train, evaluate and export the classifier into ``out_dir``; return its model card.

    ``out_dir`` receives ``model.onnx``, ``card.json`` and ``confusion.png``. There are about
    ``n_per_class`` training samples per class: ``1 - segmented_share`` of them ROI renders
    (exactly balanced), the rest objects segmented from full frames (balanced taxa in the
    frames, about :data:`CROPS_PER_FRAME` crops a frame). Validation is built the same way
    with ``val_per_class`` (default: a third of ``n_per_class``, >= 20).
    """
    if epochs < 1 or batch_size < 1:
        msg = f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}"
        raise ValueError(msg)
    if not 0.0 <= segmented_share < 1.0:
        msg = f"segmented_share must be in [0, 1), got {segmented_share}"
        raise ValueError(msg)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    val_per_class = val_per_class or max(20, n_per_class // 3)
    torch.manual_seed(seed)
    seg_counts: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    with _progress() as progress:
        x_train, y_train, src_train = _generate(
            progress, "train", n_per_class, seed, size, segmented_share, seg_counts["train"]
        )
        x_val, y_val, src_val = _generate(
            progress,
            "validation",
            val_per_class,
            seed + VAL_SEED_OFFSET,
            size,
            segmented_share,
            seg_counts["validation"],
        )
        mean, std = float(x_train.mean() / 255.0), float(x_train.std() / 255.0)
        model = PlanktonNet(len(TAXA), mean=mean, std=std).to(device)
        history = _fit(
            model,
            progress,
            x_train,
            y_train,
            x_val,
            y_val,
            src_val,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
        )
    probs = _predict(model, x_val, device)
    pred = probs.argmax(1)
    metrics = classification_metrics(y_val, pred, len(TAXA))
    threshold, unknown = unknown_threshold(probs, y_val)
    by_source = {
        name: source_metrics(probs[src_val == code], y_val[src_val == code], threshold)
        for code, name in enumerate(SOURCES)
    }
    onnx_path = export_onnx(model, out_dir / ONNX_FILE, size=size)
    parity = check_parity(model, onnx_path, x_val[:64, None].astype(np.float32))
    draw_confusion(
        np.array(metrics["confusion"]),
        out_dir / "confusion.png",
        title=f"{NAME} {VERSION}: validation accuracy {metrics['accuracy']:.3f}",
    )
    metrics |= {
        "unknown": unknown,
        "by_source": by_source,
        "onnx_parity_max_abs_diff": parity,
        "history": history,
    }
    seconds = time.perf_counter() - start
    card = ModelCard(
        task="plankton",
        name=NAME,
        version=VERSION,
        architecture=describe(model),
        input=InputSpec(size=size, channels=1, mean=mean, std=std),
        class_names=list(TAXA),
        thresholds={"unknown_confidence": threshold},
        training=TrainingSummary(
            command=command,
            seed=seed,
            epochs=epochs,
            seconds=round(seconds, 1),
            device=device,
            data={
                "source": "synthetic (seawatch.models.plankton.synthetic)",
                "train_per_class": n_per_class,
                "val_per_class": val_per_class,
                "train_seed": seed,
                "val_seed": seed + VAL_SEED_OFFSET,
                "segmented_seed_offset": SEGMENTED_SEED_OFFSET,
                "segmented_share": segmented_share,
                "train_samples": _source_sizes(src_train),
                "val_samples": _source_sizes(src_val),
                "roi": {
                    "generator": "make_dataset (render_roi, one object per crop)",
                    "class_balanced": True,
                    "dark_field_fraction": 0.2,
                },
                "segmented": {
                    "generator": "make_segmented_dataset: render_full_frame 1280x960 with "
                    "15-44 objects (class-balanced deck) -> segment_full(SegmentParams()) -> "
                    "prepare_roi",
                    **SEGMENTED,
                    "jpeg_quality": 90,
                    "max_parts": MAX_PARTS,
                    "match_rule": match_rule(
                        SEGMENTED["min_iou"], SEGMENTED["min_inside"], MAX_PARTS
                    ),
                    "train_counts": seg_counts["train"],
                    "val_counts": seg_counts["validation"],
                },
                "preprocessing": "prepare_roi (polarity to dark-on-light, pad square, resize)",
            },
            batch_size=batch_size,
            optimizer=f"AdamW(lr={lr:g}, weight_decay=5e-4)",
            schedule="OneCycleLR (cosine), per batch",
            label_smoothing=LABEL_SMOOTHING,
            augmentation="random 90-degree rotations and horizontal flips",
            torch=torch.__version__,
        ),
        metrics=metrics,
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.write(out_dir)
    return card


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )


SOURCES = ("roi", "segmented")  # codes 0 and 1 of the per-sample source arrays


def _generate(
    progress: Progress,
    label: str,
    n_per_class: int,
    seed: int,
    size: int,
    segmented_share: float,
    counts: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROI renders and segmented full-frame crops: images, labels, source codes (0/1)."""
    n_roi = max(1, round(n_per_class * (1.0 - segmented_share)))
    task = progress.add_task(f"{label} ROIs", total=n_roi * len(TAXA), info="")
    x_roi, y_roi = make_dataset(
        n_roi, np.random.default_rng(seed), size=size, progress=lambda n: progress.advance(task, n)
    )
    n_frames = 0
    if segmented_share > 0:
        n_frames = max(1, math.ceil(n_per_class * len(TAXA) * segmented_share / CROPS_PER_FRAME))
    if n_frames == 0:
        return x_roi, y_roi, np.zeros(len(y_roi), np.int64)
    task = progress.add_task(f"{label} full frames", total=n_frames, info="")
    x_seg, y_seg = make_segmented_dataset(
        n_frames,
        np.random.default_rng(seed + SEGMENTED_SEED_OFFSET),
        size=size,
        **SEGMENTED,
        max_parts=MAX_PARTS,
        counts=counts,
        progress=lambda n: progress.advance(task, n),
    )
    progress.update(task, info=f"{len(y_seg)} crops")
    source = np.repeat(np.arange(2, dtype=np.int64), [len(y_roi), len(y_seg)])
    return np.concatenate([x_roi, x_seg]), np.concatenate([y_roi, y_seg]), source


def _source_sizes(source: np.ndarray) -> dict[str, int]:
    counts = np.bincount(source, minlength=len(SOURCES))
    return {"total": int(source.size)} | {n: int(c) for n, c in zip(SOURCES, counts, strict=True)}


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 90-degree rotations and flips, per sample (plankton has no up or down)."""
    k = torch.randint(0, 4, (x.shape[0],), generator=generator)
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    out = x.clone()
    for turns in range(1, 4):
        sel = k == turns
        if sel.any():
            out[sel] = torch.rot90(x[sel], turns, dims=(2, 3))
    out[flip] = out[flip].flip(3)
    return out


def _fit(
    model: PlanktonNet,
    progress: Progress,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    src_val: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
) -> list[dict[str, float]]:
    """The training loop; returns per-epoch loss and validation accuracy (all, per source)."""
    x = torch.from_numpy(x_train[:, None]).float()
    y = torch.from_numpy(y_train)
    steps = (len(x) + batch_size - 1) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps, pct_start=0.25
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        task = progress.add_task(f"epoch {epoch}/{epochs}", total=steps, info="")
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb = _augment(x[idx], generator).to(device)
            loss = loss_fn(model.logits(xb), y[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            progress.update(
                task, advance=1, info=f"loss {total / (step * batch_size + len(idx)):.3f}"
            )
        right = _predict(model, x_val, device).argmax(1) == y_val
        accuracy = float(right.mean())
        history.append(
            {"epoch": epoch, "loss": round(total / len(x), 4), "val_accuracy": round(accuracy, 4)}
            | {
                f"val_accuracy_{name}": round(float(right[src_val == code].mean()), 4)
                for code, name in enumerate(SOURCES)
                if (src_val == code).any()
            }
        )
        progress.update(task, info=f"loss {total / len(x):.3f}  val acc {accuracy:.3f}")
        if not progress.console.is_terminal:  # bars render only at the end off a terminal
            progress.console.print(
                f"epoch={epoch} loss={total / len(x):.4f} val_accuracy="
                f"{accuracy:.4f} seconds={time.perf_counter() - started:.1f}"
            )
    return history


def _predict(model: PlanktonNet, images: np.ndarray, device: str, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (numpy N x C) for prepared uint8 crops."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            xb = torch.from_numpy(images[i : i + batch, None]).float().to(device)
            out.append(model(xb).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: train and write the artifact to ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m seawatch.models.plankton.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("models/plankton"))
    parser.add_argument("--n-per-class", type=int, default=900)
    parser.add_argument("--val-per-class", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--segmented-share",
        type=float,
        default=SEGMENTED_SHARE,
        help="share of samples cut from synthetic full frames by segment_full",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    card = train_plankton(
        args.out,
        n_per_class=args.n_per_class,
        epochs=args.epochs,
        size=args.size,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        lr=args.lr,
        val_per_class=args.val_per_class,
        segmented_share=args.segmented_share,
        command=shlex.join([*DEFAULT_COMMAND.split(), *argv]),
    )
    m = card.metrics
    parts = " ".join(
        f"{name}: accuracy={p['accuracy']} unknown={p['unknown_rate']}"
        for name, p in m["by_source"].items()
        if p["n"]
    )
    print(
        f"wrote {args.out}: accuracy={m['accuracy']} macro_f1={m['macro_f1']} "
        f"unknown_confidence={card.thresholds['unknown_confidence']} ({parts}) "
        f"seconds={card.training.seconds}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
