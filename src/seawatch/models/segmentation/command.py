"""``seawatch train segmentation``. Imports torch lazily (the ``train`` extra)."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import click

DEFAULT_MODEL = Path("models/segmentation")
DEFAULT_WIDTHS = (12, 24, 48, 64)
DEFAULT_FINE = 8  # SegNet's refinement channels (fit.py's default; torch is not imported here)


def _widths(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """``--widths 8,16,32,48`` -> (8, 16, 32, 48): at least two levels, each >= 1 channel."""
    try:
        widths = tuple(int(part) for part in value.split(","))
    except ValueError:
        widths = ()
    if len(widths) < 2 or min(widths) < 1:
        msg = f"need two or more comma-separated channel counts >= 1 (8,16,32,48), got {value!r}"
        raise click.BadParameter(msg)
    return widths


@click.command("segmentation")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--steps",
    type=click.IntRange(1),
    default=None,
    help="U-Net steps per fit (each of the two stages).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="A tiny run (tests): a few tiles and steps.")
@click.option(
    "--widths",
    callback=_widths,
    default=",".join(str(w) for w in DEFAULT_WIDTHS),
    show_default=True,
    help="SegNet channels per level, comma-separated (fewer: cheaper to serve).",
)
@click.option(
    "--fine",
    type=click.IntRange(0),
    default=DEFAULT_FINE,
    show_default=True,
    help="Channels of the refinement at the network's working resolution; 0: none (the head "
    "at half that resolution, its maps enlarged in the graph).",
)
@click.option(
    "--downsample",
    type=click.Choice(["1", "2", "4"]),
    default="1",
    show_default=True,
    help="Run the network at 1/N of its input (pooled in the graph, maps enlarged back).",
)
@click.option(
    "--rows",
    type=click.Choice(["all", "served"]),
    default="all",
    show_default=True,
    help="all: the five-row ablation; served: only the teacher, quality network and "
    "distilled student (development runs).",
)
def train_command(
    out: Path,
    steps: int | None,
    seed: int,
    quick: bool,
    widths: tuple[int, ...],
    fine: int,
    downsample: str,
    rows: str,
) -> None:
    """Seed 001 on plankton frames: teacher on 1/3 of the masks, quality-filtered
    pseudo-labels, distilled student; the five-row ablation on validation tiles and the
    student + quality network as an ONNX artifact."""
    try:
        from seawatch.models.segmentation.selftrain import QUICK, SERVED_ROW, Plan
        from seawatch.models.segmentation.train import train_segmentation
    except ImportError as exc:  # pragma: no cover - the train extra is missing
        msg = f"{exc}; install the train extra: pip install -e '.[train]'"
        raise click.ClickException(msg) from exc
    plan = QUICK if quick else Plan()
    shape = {"widths": widths, "fine": fine, "downsample": int(downsample)}
    plan = replace(plan, fit=replace(plan.fit, **shape), seed=seed, rows=rows)
    if steps is not None:  # both stages: every row trains in two equal stages
        plan = replace(plan, fit=replace(plan.fit, steps=steps), student_steps=steps)
    words = ["seawatch", "train", "segmentation", "--out", str(out)]
    words += ["--steps", str(steps)] if steps is not None else []
    words += ["--seed", str(seed)] if seed else []
    words += ["--quick"] if quick else []
    if widths != DEFAULT_WIDTHS:
        words += ["--widths", ",".join(str(w) for w in widths)]
    words += ["--fine", str(fine)] if fine != DEFAULT_FINE else []
    words += ["--downsample", downsample] if downsample != "1" else []
    words += ["--rows", rows] if rows != "all" else []
    command = shlex.join(words)
    card = train_segmentation(out, plan, command=command, validation=4 if quick else 16)
    scores = card.metrics["rows"]
    line = f"wrote {out}: student mIoU {scores[SERVED_ROW]['miou']:.4f}"
    for key, label in (("supervised_third", "supervised 1/3"), ("supervised_all", "all")):
        line += f", {label} {scores[key]['miou']:.4f}" if key in scores else ""
    click.echo(
        f"{line}, threshold {scores['threshold']['miou']:.4f}; "
        f"quality rho {card.metrics['quality']['spearman_teacher']:.3f} (validation tiles)"
    )


__all__ = ["train_command"]
