"""Train the fish re-ID embedding on synthetic zebrafish and write a model artifact.

``seawatch train fish --out models/fish`` renders the training sightings of
the *seen* individuals (see :mod:`seawatch.models.fish.data`), trains :class:`FishNet` with
sub-center ArcFace plus the auxiliary masked-pattern inpainting loss (AdamW, one-cycle,
margin warm-up), exports ``model.onnx`` (parity-checked against ONNX Runtime), then runs the
held-out protocol of :mod:`seawatch.models.fish.evaluate` on the exported graph: calibrates
the open-set threshold, enrols the gallery (``gallery.npz``), measures CMC / mAP / AUROC and
draws the plots; ``card.json`` records all of it. Seeds are fixed: same command, same model.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seawatch.contracts.card import ONNX_FILE, InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.models.fish.data import EpochRenderer, FishData, render_set
from seawatch.models.fish.evaluate import onnx_embedder, run_protocol
from seawatch.models.fish.export import check_parity, export_fish
from seawatch.models.fish.fit import FitConfig, fit
from seawatch.models.fish.network import FishNet, describe
from seawatch.models.fish.rerank import KEY as QE_KEY
from seawatch.models.training import log_line, seed_everything, select_device, training_progress

NAME, VERSION = "fish-reid-synthetic", "0.1.0"
DEFAULT_COMMAND = "seawatch train fish"
GALLERY_FILE = "gallery.npz"
DEFAULTS: dict[str, Any] = {"epochs": 20, "n_individuals": 240}
QUICK_DATA = {
    "n_individuals": 12,
    "train_per_individual": 6,
    "enrol_per_individual": 2,
    "query_per_individual": 2,
    "calibration_per_individual": 4,
    "unknown_per_individual": 4,
}


def train_fish(
    out_dir: Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    epochs: int = DEFAULTS["epochs"],
    n_individuals: int = DEFAULTS["n_individuals"],
    command: str = DEFAULT_COMMAND,
    quick: bool = False,
    far: float = 0.01,
    threads: int = 1,
    data: FishData | None = None,
    config: FitConfig | None = None,
) -> ModelCard:
    """Train, export, calibrate, enrol and evaluate into ``out_dir``; return the model card.

    ``out_dir`` receives model.onnx, card.json, gallery.npz, similarity.png, cmc.png and
    examples.png. ``quick`` shrinks everything to a seconds-long smoke run (12 individuals,
    one epoch) that still produces a complete, valid artifact. ``threads`` caps torch's CPU
    threads: 1 by default, because on a shared machine a second thread that has to wait for
    a core makes every step many times slower (measured 8x under load on 2 cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        return _train(
            out_dir, seed, device, epochs, n_individuals, command, quick, far, data, config
        )
    finally:
        torch.set_num_threads(previous)


def _train(
    out_dir: Path,
    seed: int,
    device: str,
    epochs: int,
    n_individuals: int,
    command: str,
    quick: bool,
    far: float,
    data: FishData | None,
    config: FitConfig | None,
) -> ModelCard:
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(device)
    data = data or FishData(seed=seed, n_individuals=n_individuals)
    config = config or FitConfig(epochs=epochs)
    if quick:
        data = replace(data, **QUICK_DATA)
        config = replace(config, epochs=1, batch_size=16)
    if config.epochs < 1:
        msg = f"epochs must be >= 1, got {config.epochs}"
        raise ValueError(msg)
    generator = seed_everything(seed)
    groups = data.groups()
    with training_progress() as progress:
        individuals = data.individuals()
        seen = list(groups["seen"])
        task = progress.add_task(
            "render training", total=len(seen) * data.train_per_individual, info=""
        )
        first = render_set(
            data,
            individuals,
            seen,
            data.train_per_individual,
            "train",
            epoch=1,
            progress=lambda n: progress.advance(task, n),
        )
        images = first[0]
        mean, std = _channel_stats(images)
        model = FishNet(height=data.height, width=data.width, mean=mean, std=std)
        with EpochRenderer(data, individuals, seen, config.epochs) as renderer:
            renderer.prefetch(2)  # rendered in the background while epoch 1 trains
            history = fit(
                model,
                lambda epoch: first if epoch == 1 else renderer(epoch),
                len(seen),
                config,
                generator,
                progress=progress,
                device=device,
            )
        onnx_path = export_fish(model, out_dir / ONNX_FILE)
        parity = _parity(model, onnx_path, images, generator)
        task = progress.add_task("evaluate (ONNX)", total=None, info="")
        result, gallery = run_protocol(
            onnx_embedder(onnx_path),
            data,
            far=far,
            out_dir=out_dir,
            progress=lambda n: progress.advance(task, n),
        )
        log_line(
            progress,
            f"evaluation top1={result['known']['all']['top1']} "
            f"auroc={result['open_set']['new_vs_known_auroc']}",
        )
    gallery.save(out_dir / GALLERY_FILE)
    threshold = result["threshold"]["match_similarity"]
    expanded = result["threshold"]["query_expansion"]
    seconds = time.perf_counter() - start
    card = ModelCard(
        task="fish",
        name=NAME,
        version=VERSION,
        architecture=describe(model),
        input=InputSpec(
            size=max(data.height, data.width),
            height=data.height,
            width=data.width,
            channels=3,
            mean=mean,
            std=std,
            preprocessing="seawatch.models.fish.head.prepare_fish",
        ),
        output="embedding",
        outputs=["embedding"],
        files={"gallery": GALLERY_FILE},
        class_names=[],
        thresholds={
            "match_similarity": threshold,
            "target_false_match_rate": far,
            QE_KEY: expanded["match_similarity"],
        },
        thresholds_by_gallery_size={
            "match_similarity": result["threshold"]["by_gallery_size"],
            QE_KEY: expanded["by_gallery_size"],
        },
        training=TrainingSummary(
            command=command,
            seed=seed,
            epochs=config.epochs,
            seconds=round(seconds, 1),
            device=device,
            data=data.summary()
            | {
                "train_images": f"{len(images)} fresh renders per epoch "
                f"({data.train_per_individual} per seen individual), {config.epochs} epochs",
                "gallery": f"{len(gallery)} individuals ({GALLERY_FILE}): seen and unseen_known, "
                f"{data.enrol_per_individual} held-out renders each",
            },
            quick=quick,
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            **config.summary(),
        ),
        metrics=result | {"onnx_parity_max_abs_diff": parity, "history": history},
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.write(out_dir)
    return card


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..1) of the training images, for in-graph normalisation."""
    sample = images[:: max(1, len(images) // 2000)].astype(np.float32) / 255.0
    mean = sample.mean(axis=(0, 2, 3))
    std = sample.std(axis=(0, 2, 3))
    return tuple(round(float(v), 5) for v in mean), tuple(round(float(v), 5) for v in std)


def _parity(
    model: FishNet, onnx_path: Path, images: np.ndarray, generator: torch.Generator
) -> float:
    """torch vs ONNX Runtime on real training images and on random 0..255 noise."""
    noise = torch.rand((4, 3, model.height, model.width), generator=generator) * 255.0
    real = check_parity(model, onnx_path, images[:8].astype(np.float32), atol=1e-4)
    return max(real, check_parity(model, onnx_path, noise.numpy(), atol=1e-4))


def summary_line(out: Path, card: ModelCard) -> str:
    """One line with the headline numbers of a trained artifact."""
    known, open_set = card.metrics["known"], card.metrics["open_set"]
    t = card.metrics["threshold"]
    return (
        f"wrote {out}: top1 all={known['all']['top1']} seen={known['seen']['top1']} "
        f"unseen={known['unseen']['top1']} mAP all={known['all']['mAP']} "
        f"auroc={open_set['new_vs_known_auroc']} "
        f"(unseen {open_set['new_vs_known_auroc_unseen']}) "
        f"match_similarity={t['match_similarity']} test_fmr={t['test_false_match_rate']} "
        f"seconds={card.training.seconds}"
    )
