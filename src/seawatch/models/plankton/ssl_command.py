"""``seawatch train plankton-ssl``: SimCLR on a folder of unlabelled crops, with progress
bars, the backbone card and its loss plot."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.image_files import IMAGE_SUFFIXES, read_image
from seawatch.contracts.preprocess import prepare_roi, to_gray8
from seawatch.models.plankton.backbone import resolve_pretrained, save_backbone
from seawatch.models.plankton.ssl import SslParams, chance_loss, pretrain_simclr
from seawatch.models.training import select_device, training_progress

INPUT_SIZE = 64


def unlabelled_crops(
    root: Path, *, size: int = INPUT_SIZE, option: str = "--data-dir"
) -> tuple[np.ndarray, list[str]]:
    """Every readable image under ``root`` as a prepared crop; the unreadable ones named."""
    paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    crops, skipped = [], []
    with training_progress() as progress:
        task = progress.add_task("reading crops", total=len(paths), info="")
        for path in paths:
            try:
                crops.append(prepare_roi(to_gray8(read_image(path)), size))
            except (ValueError, OSError) as exc:
                skipped.append(f"{path}: {exc}")
            progress.advance(task)
    if not crops:
        msg = f"{option} {root}: no readable image ({sorted(IMAGE_SUFFIXES)}); {skipped[:3]}"
        raise ConfigError(msg)
    return np.stack(crops), skipped


def pretrain_folder(
    root: Path,
    out: Path,
    *,
    start: str,
    epochs: int,
    batch_size: int,
    seed: int,
    device: str,
    command: str,
) -> Path:
    """Pretrain on the crops under ``root``; write the backbone artifact and loss.png."""
    images, skipped = unlabelled_crops(root)
    params = SslParams(epochs=epochs, batch_size=min(batch_size, len(images) // 2))
    begin = resolve_pretrained(start, user_data=True)
    started = time.perf_counter()
    with training_progress() as progress:
        task = progress.add_task("SimCLR", total=epochs, info="")
        backbone, history = pretrain_simclr(
            images,
            start=begin,
            params=params,
            seed=seed,
            device=select_device(device),
            on_epoch=lambda e, loss, s: progress.update(
                task, completed=e, info=f"loss {loss:.3f} ({s:.0f} s)"
            ),
        )
    source = {
        "method": params.describe(),
        "start": str(begin) if begin else "scratch (random init)",
        "data": {"folder": str(root), "crops": len(images), "unreadable": len(skipped)},
        "loss_per_epoch": history,
        "chance_loss": round(chance_loss(params.batch_size), 4),
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "command": command,
    }
    path = save_backbone(backbone, out, source)
    _plot(history, chance_loss(params.batch_size), Path(out) / "loss.png")
    return path


def _plot(history: list[float], chance: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=120)
    ax.plot(range(1, len(history) + 1), history, marker="o", label="NT-Xent")
    ax.axhline(chance, color="grey", linestyle="--", label="chance: log(2N - 1)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("SimCLR pretraining of the plankton backbone")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["pretrain_folder", "unlabelled_crops"]
