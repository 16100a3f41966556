"""``seawatch train fish-segmentation``. Imports torch lazily (the ``train`` extra)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

DEFAULT_MODEL = Path("models/fish-segmentation")


@click.command("fish-segmentation")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Steps per fit.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="A tiny run (tests): a few scenes and steps.")
def train_command(out: Path, steps: int | None, seed: int, quick: bool) -> None:
    """The segmentation network on whole tank frames (fish bodies): teacher on 1/3 of the
    masks, quality-filtered pseudo-labels, distilled student; every row scored as a
    detector on validation scenes; the student + quality network as an ONNX artifact
    (``tasks.fish.options.detector: model``)."""
    try:
        from seawatch.models.fish.segment_train import (
            PLAN,
            QUICK,
            train_fish_segmentation,
            with_steps,
        )
    except ImportError as exc:  # pragma: no cover - the train extra is missing
        msg = f"{exc}; install the train extra: pip install -e '.[train]'"
        raise click.ClickException(msg) from exc
    plan = with_steps(QUICK if quick else PLAN, steps, seed)
    words = ["seawatch", "train", "fish-segmentation", "--out", str(out)]
    words += ["--steps", str(steps)] if steps is not None else []
    words += ["--seed", str(seed)] if seed else []
    words += ["--quick"] if quick else []
    rows = train_fish_segmentation(
        out, plan, command=shlex.join(words), validation=4 if quick else 32
    )
    student, classical = rows["self_training_quality_kd"], rows["threshold"]
    click.echo(
        f"wrote {out}: student recall {student['recall']:.3f} precision "
        f"{student['precision']:.3f}, overlapping pairs both found "
        f"{student['overlapping_pairs_both_found']}/{student['overlapping_pairs']}; classical "
        f"detector recall {classical['recall']:.3f} precision {classical['precision']:.3f}, "
        f"pairs {classical['overlapping_pairs_both_found']}/{classical['overlapping_pairs']} "
        "(validation scenes)"
    )


__all__ = ["train_command"]
