"""``seawatch train plankton-oe``: fine-tune a plankton model with outlier exposure, then fit
its out-of-distribution scorer on the new features."""

from __future__ import annotations

from pathlib import Path

import click

from seawatch.models.plankton.oe_train import STAGES, OeParams

DEFAULT_MODEL = Path("models/plankton")


@click.command("plankton-oe")
@click.option(
    "--model",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=DEFAULT_MODEL,
    show_default=True,
    help="the artifact to start from (read, never written)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="the folder the fine-tuned artifact is written to",
)
@click.option("--steps", default=OeParams.steps, show_default=True, help="optimiser steps")
@click.option(
    "--batch", default=OeParams.batch, show_default=True, help="objects (and outliers) a step"
)
@click.option("--weight", default=OeParams.weight, show_default=True, help="the OE loss's weight")
@click.option("--lr", default=OeParams.lr, show_default=True, help="peak learning rate")
@click.option(
    "--train-from",
    type=click.IntRange(0, STAGES),
    default=OeParams.train_from,
    show_default=True,
    help=f"the first residual stage trained ({STAGES}: the head alone)",
)
@click.option("--seed", default=OeParams.seed, show_default=True)
@click.pass_context
def oe_command(
    ctx: click.Context,
    model: Path,
    out: Path,
    steps: int,
    batch: int,
    weight: float,
    lr: float,
    train_from: int,
    seed: int,
) -> None:
    """Fine-tune the classifier's last stages and head with outlier exposure (drawn
    organisms of no taxon and training taxa through corrupted optics pushed to a uniform
    softmax), refit its temperature and unknown threshold, then fit the outlier-exposure
    scorer on the new graph (as `seawatch train plankton-ood`). Needs the `train` extra."""
    from seawatch.contracts.errors import SeawatchError
    from seawatch.models.plankton.oe_artifact import build_oe_artifact
    from seawatch.models.plankton.ood_oe_fit import fit_oe

    try:
        params = OeParams(
            steps=steps, batch=batch, weight=weight, lr=lr, train_from=train_from, seed=seed
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    words = [ctx.command_path, "--model", str(model), "--out", str(out)]
    words += [f"--steps {steps} --batch {batch} --weight {weight:g} --lr {lr:g}"]
    words += [f"--train-from {train_from} --seed {seed}"]
    try:
        record = build_oe_artifact(model, out, params, command=" ".join(words))
        report = fit_oe(out, command=" ".join(words))
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    before, after = record["validation_before"], record["validation_after"]
    calib = report["ood"]["calibration"]
    click.echo(
        f"wrote {out}: validation accuracy {before['accuracy']:.1%} -> {after['accuracy']:.1%}; "
        f"unknown on validation {calib['validation']['unknown']:.1%}, held-out calibration "
        f"taxa {calib['held_out_taxa']['unknown']:.1%}"
    )


__all__ = ["oe_command"]
