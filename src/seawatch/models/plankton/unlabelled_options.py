"""The ``seawatch train plankton`` options for learning from unlabelled crops
(``--unlabelled-dir`` and how): one decorator, and the check that turns them into
:class:`~seawatch.models.plankton.selftrain.SelfTrainParams`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def unlabelled_options(func: Any) -> Any:
    """Add ``--unlabelled-dir``, ``--unlabelled-method``, ``--self-training-rounds`` and
    ``--self-training-min-threshold`` to a click command."""
    options = [
        click.option(
            "--unlabelled-dir",
            type=click.Path(path_type=Path, exists=True, file_okay=False),
            default=None,
            help="Unlabelled crops of your instrument: learnt from after fine-tuning (see "
            "--unlabelled-method), kept if it wins on validation.",
        ),
        click.option(
            "--unlabelled-method",
            type=click.Choice(["self-training", "consistency"]),
            default="self-training",
            show_default=True,
            help="self-training: offline rounds of pseudo-labels, a student trained again "
            "each round; consistency: FixMatch-style, pseudo-labels renewed every step by an "
            "EMA teacher.",
        ),
        click.option(
            "--self-training-rounds",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Self-training rounds: each student labels the crops for the next; the best "
            "on validation (the fine-tuned model included) is kept.",
        ),
        click.option(
            "--self-training-min-threshold",
            type=click.FloatRange(min=0.0, max=0.8, min_open=True),
            default=None,
            help="Class-adaptive pseudo-label thresholds (FlexMatch): a class the model "
            "passes few crops of at 0.8 gets a lower threshold, down to this. Default: "
            "0.8 for every class.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def self_training_params(
    unlabelled_dir: Path | None, method: str, rounds: int, min_threshold: float | None
) -> Any:
    """The :class:`SelfTrainParams` of the options (None: the defaults); the self-training
    options without ``--unlabelled-dir`` or with another method are an error."""
    if rounds == 1 and min_threshold is None:
        return None
    if unlabelled_dir is None or method != "self-training":
        msg = (
            "--self-training-rounds and --self-training-min-threshold go with "
            "--unlabelled-dir and --unlabelled-method self-training"
        )
        raise click.BadParameter(msg)
    from seawatch.models.plankton.selftrain import SelfTrainParams

    return SelfTrainParams(rounds=rounds, min_threshold=min_threshold)


__all__ = ["self_training_params", "unlabelled_options"]
