"""``seawatch train segmentation``. Imports torch lazily (the ``train`` extra)."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import click

DEFAULT_MODEL = Path("models/segmentation")


@click.command("segmentation")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="U-Net steps per fit.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="A tiny run (tests): a few tiles and steps.")
def train_command(out: Path, steps: int | None, seed: int, quick: bool) -> None:
    """Seed 001 on plankton frames: teacher on 1/3 of the masks, quality-filtered
    pseudo-labels, distilled student; the five-row ablation on validation tiles and the
    student + quality network as an ONNX artifact."""
    try:
        from seawatch.models.segmentation.selftrain import QUICK, Plan
        from seawatch.models.segmentation.train import train_segmentation
    except ImportError as exc:  # pragma: no cover - the train extra is missing
        msg = f"{exc}; install the train extra: pip install -e '.[train]'"
        raise click.ClickException(msg) from exc
    plan = QUICK if quick else Plan()
    if steps is not None:
        plan = replace(plan, fit=replace(plan.fit, steps=steps))
    plan = replace(plan, seed=seed)
    words = ["seawatch", "train", "segmentation", "--out", str(out)]
    words += ["--steps", str(steps)] if steps is not None else []
    words += ["--seed", str(seed)] if seed else []
    words += ["--quick"] if quick else []
    command = shlex.join(words)
    card = train_segmentation(out, plan, command=command, validation=4 if quick else 16)
    rows = card.metrics["rows"]
    click.echo(
        f"wrote {out}: student mIoU {rows['self_training_quality_kd']['miou']:.4f}, "
        f"supervised 1/3 {rows['supervised_third']['miou']:.4f}, all "
        f"{rows['supervised_all']['miou']:.4f}, threshold {rows['threshold']['miou']:.4f}; "
        f"quality rho {card.metrics['quality']['spearman_teacher']:.3f} (validation tiles)"
    )


__all__ = ["train_command"]
