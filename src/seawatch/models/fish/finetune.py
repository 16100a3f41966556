"""Fine-tune the fish re-ID embedding on a user's folders of labelled fish; write an artifact.

``seawatch train fish --data-dir DIR`` (one sub-folder of images per individual):

1. reads the views at the start model's input size (:mod:`.folders`) and holds out whole
   individuals (known, calibration, new), never other views of training fish;
2. starts from the committed model's weights (``--pretrained auto``, rebuilt from its graph
   and checked against it; :mod:`.pretrained`), another fish graph, or scratch (``none``);
3. scores the start on the held-out individuals (:mod:`.folder_eval`: rank-1, mAP, open-set
   AUROC) through its graph;
4. trains with the synthetic recipe's loss (sub-center ArcFace; no inpainting: the user's
   images have no skin masks), the ArcFace centres imprinted from the start's embeddings, a
   lower learning rate than from scratch and about ``steps`` optimiser steps whatever the data
   size (batch about n/8, 16..64), the views jittered as in training;
5. exports ``model.onnx`` (parity-checked), scores it on the same held-out individuals, sets
   ``match_similarity`` on the calibration individuals, enrols every individual of ``DIR`` in
   ``gallery.npz`` and writes ``card.json`` (start, split, before/after metrics).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seawatch.contracts.card import ONNX_FILE, InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.models.fish.evaluate import Embed, onnx_embedder
from seawatch.models.fish.export import check_parity, export_fish
from seawatch.models.fish.fit import FitConfig, fit
from seawatch.models.fish.folder_eval import held_out_metrics, improvement
from seawatch.models.fish.folders import FishFolders, read_folders, split_individuals
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.network import FishNet, describe
from seawatch.models.fish.pretrained import (
    DEFAULT_START,
    rebuild_fishnet,
    start_graph,
    start_info,
)
from seawatch.models.training import log_line, seed_everything, select_device, training_progress

NAME, VERSION = "fish-reid-finetuned", "0.1.0"
GALLERY_FILE = "gallery.npz"
GALLERY_VIEWS = 8  # views per individual enrolled in the artifact's gallery
DATA_SOURCE = "folders"  # card.training.data["source"]: not the synthetic generator


@dataclass(frozen=True, slots=True)
class FinetuneConfig:
    """What ``seawatch train fish --data-dir`` may set (recorded in the card)."""

    pretrained: str = "auto"
    held_out: float = 0.3
    steps: int = 300
    epochs: int | None = None  # default: as many as make about ``steps`` steps
    lr: float | None = None  # default: 2e-3 from a pretrained start, 6e-3 from scratch
    far: float = 0.01


def finetune_fish(
    data_dir: Path,
    out_dir: Path,
    *,
    config: FinetuneConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
    threads: int = 1,
    command: str = "seawatch train fish --data-dir",
    default_start: Path = DEFAULT_START,
) -> ModelCard:
    """Fine-tune on ``data_dir``, export and evaluate into ``out_dir``; return the card."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        return _finetune(
            Path(data_dir), Path(out_dir), config or FinetuneConfig(), seed, device, command,
            default_start,
        )  # fmt: skip
    finally:
        torch.set_num_threads(previous)


def _finetune(
    data_dir: Path,
    out_dir: Path,
    config: FinetuneConfig,
    seed: int,
    device: str,
    command: str,
    default_start: Path,
) -> ModelCard:
    started = time.perf_counter()
    device = select_device(device)
    graph = start_graph(config.pretrained, default_start)
    model = rebuild_fishnet(graph) if graph is not None else None
    height, width = (model.height, model.width) if model is not None else (64, 160)
    folders = read_folders(data_dir, height, width)
    groups = split_individuals(len(folders.names), config.held_out, seed)
    start = start_info(config.pretrained, graph, model, folders.images)
    generator = seed_everything(seed)
    images, labels = folders.of(groups["train"])
    labels = np.searchsorted(np.array(groups["train"]), labels)  # 0 .. n_train - 1
    if model is None:
        mean, std = _channel_stats(images)
        model = FishNet(height=height, width=width, mean=mean, std=std)
    before = held_out_metrics(
        onnx_embedder(graph) if graph is not None else _torch_embedder(model),
        folders,
        groups,
        far=config.far,
    )
    fit_config = _fit_config(config, len(images), pretrained=graph is not None)
    centres = _centres(model, images, labels) if graph is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    skins = np.zeros((len(images), height, width), bool)  # no masks: no inpainting
    with training_progress() as progress:
        log_line(progress, f"start {start['start']} before: {_line(before)}")
        history = fit(
            model,
            lambda _epoch: (images, labels, skins),
            len(groups["train"]),
            fit_config,
            generator,
            progress=progress,
            device=device,
            centres=centres,
        )
        onnx_path = export_fish(model, out_dir / ONNX_FILE)
        parity = check_parity(model, onnx_path, folders.images[:8].astype(np.float32), atol=1e-4)
        embed = onnx_embedder(onnx_path)
        after = held_out_metrics(embed, folders, groups, far=config.far)
        log_line(progress, f"after: {_line(after)}")
    gallery = _gallery(embed, folders)
    gallery.save(out_dir / GALLERY_FILE)
    card = _card(
        model,
        onnx_path,
        config,
        fit_config,
        seed=seed,
        device=device,
        command=command,
        seconds=time.perf_counter() - started,
        data=_data_summary(data_dir, folders, groups, len(images)),
        start=start,
        metrics={
            "embedding_dim": model.embedding_dim,
            "before": before,
            "after": after,
            "improvement": improvement(before, after),
            "gallery_individuals": len(gallery),
            "onnx_parity_max_abs_diff": parity,
            "history": history,
        },
    )
    card.write(out_dir)
    return card


def _fit_config(config: FinetuneConfig, n: int, *, pretrained: bool) -> FitConfig:
    """The synthetic recipe resized to the data: batch about n/8 (16..64), ~``steps`` steps."""
    batch = int(np.clip(n // 8, 16, 64))
    per_epoch = max(1, n // batch)
    epochs = config.epochs or max(1, round(config.steps / per_epoch))
    lr = config.lr or (2e-3 if pretrained else 6e-3)
    return FitConfig(
        epochs=epochs,
        batch_size=min(batch, n),
        lr=lr,
        inpaint_weight=0.0,
        mask_share=0.0,
        margin_warmup=0.3,
    )


@torch.no_grad()
def _centres(model: FishNet, images: np.ndarray, labels: np.ndarray) -> torch.Tensor:
    """Each training individual's mean embedding under the start (unit length)."""
    emb = _torch_embedder(model)(images.astype(np.float32))
    centres = np.stack([emb[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    return torch.nn.functional.normalize(torch.from_numpy(centres), dim=1)


def _torch_embedder(model: FishNet) -> Embed:
    def embed(batch: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            parts = [
                model(torch.from_numpy(batch[i : i + 128].astype(np.float32))).numpy()
                for i in range(0, len(batch), 128)
            ]
        return np.concatenate(parts)

    return embed


def _gallery(embed: Embed, folders: FishFolders) -> Gallery:
    """Every individual of the folders, enrolled with up to GALLERY_VIEWS of its views."""
    gallery = Gallery()
    for index, name in enumerate(folders.names):
        views = folders.images[folders.labels == index][:GALLERY_VIEWS]
        gallery.enrol(name, embed(views.astype(np.float32)))
    return gallery


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sample = images.astype(np.float32) / 255.0
    mean, std = sample.mean(axis=(0, 2, 3)), sample.std(axis=(0, 2, 3))
    return tuple(round(float(v), 5) for v in mean), tuple(round(float(v), 5) for v in std)


def _data_summary(
    data_dir: Path, folders: FishFolders, groups: dict[str, list[int]], n_train: int
) -> dict[str, Any]:
    return {
        "source": DATA_SOURCE,
        "data_dir": str(data_dir),
        "individuals": len(folders.names),
        "views": len(folders.labels),
        "train_views": n_train,
        "skipped": folders.skipped[:20],
        "skipped_count": len(folders.skipped),
        "split": "by individual: "
        + ", ".join(f"{g} {len(v)}" for g, v in groups.items())
        + " (known: enrolled from up to 3 views, queried with the rest; calibration: "
        "impostors for the threshold; new: never enrolled)",
        "groups": {g: [folders.names[i] for i in v] for g, v in groups.items()},
    }


def _card(
    model: FishNet,
    onnx_path: Path,
    config: FinetuneConfig,
    fit_config: FitConfig,
    *,
    seed: int,
    device: str,
    command: str,
    seconds: float,
    data: dict[str, Any],
    start: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelCard:
    after = metrics["after"]
    summary = fit_config.summary()
    summary["loss"] = {"arcface": summary["loss"]["arcface"], "inpainting": "off (no skin masks)"}
    return ModelCard(
        task="fish",
        name=NAME,
        version=VERSION,
        architecture=describe(model) + (", BatchNorm folded" if "sha256" in start else ""),
        input=InputSpec(
            size=max(model.height, model.width),
            height=model.height,
            width=model.width,
            channels=3,
            mean=tuple(float(v) for v in model.mean.flatten()),
            std=tuple(float(v) for v in model.std.flatten()),
            preprocessing="seawatch.models.fish.head.prepare_fish",
        ),
        output="embedding",
        outputs=["embedding"],
        files={"gallery": GALLERY_FILE},
        class_names=[],
        thresholds={
            "match_similarity": after["match_similarity"],
            "target_false_match_rate": config.far,
        },
        training=TrainingSummary(
            command=command,
            seed=seed,
            data=data,
            epochs=fit_config.epochs,
            seconds=round(seconds, 1),
            device=device,
            start=start,
            held_out_share=config.held_out,
            torch=torch.__version__,
            **summary,
        ),
        metrics=metrics,
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _line(m: dict[str, Any]) -> str:
    return (
        f"top1={m['top1']} top5={m['top5']} mAP={m['mAP']} auroc={m['new_vs_known_auroc']} "
        f"match_similarity={m['match_similarity']}"
    )


def summary_line(out: Path, card: ModelCard) -> str:
    """One line: the held-out individuals' metrics before and after fine-tuning."""
    b, a = card.metrics["before"], card.metrics["after"]
    return (
        f"wrote {out}: held-out individuals {a['individuals']}: top1 {b['top1']} -> {a['top1']} "
        f"mAP {b['mAP']} -> {a['mAP']} auroc {b['new_vs_known_auroc']} -> "
        f"{a['new_vs_known_auroc']} match_similarity={card.thresholds['match_similarity']} "
        f"gallery={card.metrics['gallery_individuals']} seconds={card.training.seconds}"
    )


__all__ = ["DATA_SOURCE", "FinetuneConfig", "finetune_fish", "summary_line"]
