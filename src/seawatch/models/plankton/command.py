"""``seawatch train plankton`` and ``seawatch evaluate plankton``.

Training imports torch lazily (the ``train`` extra); evaluation runs the artifact through ONNX
Runtime and needs no torch.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import click

from seawatch.models.plankton.balance import BALANCE_CHOICES
from seawatch.models.plankton.unlabelled_options import self_training_params, unlabelled_options

DEFAULT_MODEL = Path("models/plankton")


def _command_line() -> str:
    return shlex.join(["seawatch", *sys.argv[1:]]) if sys.argv[1:] else "seawatch train plankton"


def labelled_data(func):
    """The ``--data-dir`` / ``--ecotaxa`` options, shared by train and evaluate."""
    func = click.option(
        "--ecotaxa",
        type=click.Path(path_type=Path),
        default=None,
        help="EcoTaxa export TSV (images beside it, named by img_file_name).",
    )(func)
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="ImageFolder tree DIR/<class>/<image>. Default: the synthetic generator.",
    )(func)


@click.command("plankton")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@labelled_data
@click.option("--validated-only", is_flag=True, help="EcoTaxa: only 'validated' rows.")
@click.option(
    "--val-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Your validation ImageFolder (else split off the training folder).",
)
@click.option(
    "--test-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Your test ImageFolder (else split off the training folder).",
)
@unlabelled_options
@click.option(
    "--pretrained",
    default="auto",
    show_default=True,
    help="auto: your data start from the committed backbone (models/plankton/backbone.pt), "
    "the synthetic generator from scratch; none: scratch; or a PlanktonNet state_dict file.",
)
@click.option(
    "--finetune",
    type=click.Choice(["auto", "linear", "last", "full"]),
    default="auto",
    show_default=True,
    help="Your data: which layers learn (auto: each tried, the best on validation kept).",
)
@click.option(
    "--folds",
    type=click.IntRange(min=0),
    default=None,
    help="Your data without --val-dir: K-fold cross-validation (mean +- std of macro-F1 on "
    "the card), then the final model on every image. Default: 5 when a class has under 30 "
    "images, else none; 0: never.",
)
@click.option(
    "--colour",
    type=click.Choice(["auto", "gray", "rgb"]),
    default="auto",
    show_default=True,
    help="Your data: a 3-channel model for colour images (auto: when at least half the "
    "images have channels that differ).",
)
@click.option(
    "--input-size",
    type=click.Choice(["64", "96", "128"]),
    default=None,
    help="Square input side in px. Default: 64 (synthetic); your data: the nearest to the "
    "median longer side of its images.",
)
@click.option("--n-per-class", default=900, show_default=True, help="synthetic: mean per class")
@click.option(
    "--segmentation-model",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="synthetic: also learn from crops this segmentation network (e.g. "
    "models/segmentation) cuts from hard and easy full frames, as the daemon serves them "
    "with ingest.segmentation.method: model.",
)
@click.option(
    "--model-segmented-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.3,
    show_default=True,
    help="synthetic, with --segmentation-model: those crops per class, as a share of "
    "--n-per-class (added to the ROIs and threshold cuts, in every split).",
)
@click.option(
    "--imbalance",
    default=4.0,
    show_default=True,
    help="synthetic: most/least frequent class in the training split",
)
@click.option("--balance", type=click.Choice(BALANCE_CHOICES), default="sampler", show_default=True)
@click.option(
    "--epochs", type=int, default=None, help="Default: 10 (synthetic), else sized to the data."
)
@click.option(
    "--batch-size", type=int, default=None, help="Default: 128 (synthetic), else ~n/8 in 16..128."
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Your data: the optimiser steps the sized schedule aims at (default 300; 900 scored "
    "+2.5 macro-F1 points at 50 labels/class on the few-labels benchmark, at 3x the time). "
    "--epochs / --batch-size win.",
)
@click.option(
    "--views",
    type=click.Choice(["1", "4", "8", "auto"]),  # views_choice.VIEWS_CHOICES (torch-free here)
    default="1",
    show_default=True,
    help="Dihedral views of each crop the exported graph averages (4: the right-angle turns; "
    "8: and their mirror images; auto: the best on validation if it gains >= 0.5 points). "
    "N views cost N times the classifier's compute per object. Needs a validation split.",
)
@click.option("--lr", default=4e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--quick", is_flag=True, help="A seconds-long run for smoke tests (tiny data).")
def train_command(
    out: Path,
    data_dir: Path | None,
    ecotaxa: Path | None,
    validated_only: bool,
    val_dir: Path | None,
    test_dir: Path | None,
    unlabelled_dir: Path | None,
    unlabelled_method: str,
    self_training_rounds: int,
    self_training_min_threshold: float | None,
    pretrained: str,
    finetune: str,
    folds: int | None,
    colour: str,
    input_size: str | None,
    n_per_class: int,
    segmentation_model: Path | None,
    model_segmented_share: float,
    imbalance: float,
    balance: str,
    epochs: int | None,
    batch_size: int | None,
    steps: int | None,
    views: str,
    lr: float,
    seed: int,
    device: str,
    quick: bool,
) -> None:
    """Train the plankton classifier; write model.onnx, card.json and the evaluation plots."""
    try:
        from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton
    except ImportError as exc:
        msg = f"training needs torch: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    if data_dir is not None and ecotaxa is not None:
        raise click.BadParameter("give either --data-dir or --ecotaxa, not both")
    user_data = data_dir is not None or ecotaxa is not None
    if (val_dir or test_dir or unlabelled_dir or folds is not None or colour != "auto") and (
        not user_data
    ):
        msg = (
            "--val-dir, --test-dir, --unlabelled-dir, --folds and --colour go with --data-dir "
            "or --ecotaxa"
        )
        raise click.BadParameter(msg)
    if steps is not None and not user_data:
        raise click.BadParameter("--steps sizes the schedule of --data-dir or --ecotaxa data")
    if segmentation_model is not None and user_data:
        msg = "--segmentation-model goes with the synthetic generator, not --data-dir/--ecotaxa"
        raise click.BadParameter(msg)
    adaptive = user_data and epochs is None and batch_size is None
    if quick:
        n_per_class, epochs, batch_size = 12, 1, 32
    data = PlanktonData(
        data_dir=data_dir,
        ecotaxa=ecotaxa,
        validated_only=validated_only,
        n_per_class=n_per_class,
        val_per_class=6 if quick else None,
        imbalance=imbalance,
        segmentation_model=segmentation_model,
        model_segmented_share=model_segmented_share,
        val_dir=val_dir,
        test_dir=test_dir,
        unlabelled_dir=unlabelled_dir,
        colour=colour,  # type: ignore[arg-type]
        input_size=int(input_size) if input_size else None,
        folds=folds,
    )
    params = FitParams(
        epochs=epochs or 10,
        batch_size=batch_size or 128,
        lr=lr,
        balance=balance,
        finetune=finetune,  # type: ignore[arg-type]
        adaptive=adaptive,
        unlabelled_method=unlabelled_method,  # type: ignore[arg-type]
        self_training=self_training_params(
            unlabelled_dir, unlabelled_method, self_training_rounds, self_training_min_threshold
        ),
    )
    if steps is not None:
        params = dataclasses.replace(params, target_steps=steps)
    from seawatch.models.plankton.views_choice import parse_views

    params = dataclasses.replace(params, views=parse_views(views))
    from seawatch.contracts.errors import SeawatchError
    from seawatch.models.plankton.backbone import resolve_pretrained

    start = resolve_pretrained(pretrained, user_data=user_data)
    try:
        card = train_plankton(
            out,
            data=data,
            params=params,
            seed=seed,
            device=device,
            pretrained=start,
            command=_command_line(),
        )
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_result(out, card)


def _echo_result(out: Path, card) -> None:
    """The lines ``train plankton`` prints: input, tuning, cross-validation, the score."""
    m, spec = card.metrics, card.input
    click.echo(f"input: {spec.size} px, {spec.channels} channel(s)")
    tuned = m.get("fine_tuning")
    if tuned:
        scores = {k: v for k, v in tuned.items() if k.endswith("_by_mode")}
        click.echo(
            f"start={tuned['start']} mode={tuned['mode']} {scores} schedule={tuned['schedule']}"
        )
    if "test_time_views" in m:
        seen = m["test_time_views"]
        click.echo(
            f"views: {seen['chosen']} (validation macro-F1 by views {seen['validation_macro_f1']})"
        )
    cv = m.get("cross_validation")
    if cv:
        per_class = ", ".join(
            f"{name} {s['mean']:.3f}+-{s['std']:.3f}" for name, s in cv["f1_per_class"].items()
        )
        click.echo(
            f"{cv['folds']}-fold cross-validation: macro_f1={cv['macro_f1_mean']:.3f}"
            f"+-{cv['macro_f1_std']:.3f} (per class: {per_class})"
        )
    click.echo(
        f"wrote {out}: {m['split'].split(' ')[0]} accuracy={m['accuracy']} "
        f"macro_f1={m['macro_f1']} ece={m['ece']} "
        f"temperature={card.thresholds['temperature']} "
        f"unknown_confidence={card.thresholds['unknown_confidence']} "
        f"seconds={card.training.seconds}"
    )


@click.command("plankton-ssl")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="Unlabelled crops: every image under DIR (any tree; no labels needed).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Backbone dir.")
@click.option(
    "--start",
    default="auto",
    show_default=True,
    help="auto: the committed synthetic-pretrained backbone; none: scratch; or a file.",
)
@click.option("--epochs", default=20, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
def ssl_command(
    data_dir: Path, out: Path, start: str, epochs: int, batch_size: int, seed: int, device: str
) -> None:
    """Self-supervised pretraining (SimCLR) of the backbone on unlabelled crops; writes
    backbone.pt, backbone.json and loss.png (then: train plankton --pretrained OUT/backbone.pt)."""
    try:
        from seawatch.models.plankton.ssl_command import pretrain_folder
    except ImportError as exc:
        msg = f"pretraining needs torch: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    path = pretrain_folder(
        data_dir,
        out,
        start=start,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        device=device,
        command=_command_line(),
    )
    click.echo(f"wrote {path}, {path.with_name('backbone.json')} and {out / 'loss.png'}")


@click.command("plankton")
@click.option("--model", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where evaluation.json and the plots go (default: the model directory).",
)
@labelled_data
def evaluate_command(
    model: Path, out: Path | None, data_dir: Path | None, ecotaxa: Path | None
) -> None:
    """Score a plankton artifact (ONNX Runtime) on labelled data; write metrics and plots."""
    from seawatch.contracts.card import load_card
    from seawatch.models.plankton.datasets import load_ecotaxa, load_image_folder
    from seawatch.models.plankton.evaluate import evaluate_artifact
    from seawatch.models.plankton.synthetic_sets import model_segmented_args, synthetic_split

    card = load_card(model)
    out = out or model
    size, channels = card.input.size, card.input.channels
    if data_dir is not None:
        data, title = load_image_folder(data_dir, size=size, channels=channels), f"{data_dir}"
    elif ecotaxa is not None:
        data, title = load_ecotaxa(ecotaxa, size=size, channels=channels), f"{ecotaxa}"
    else:
        summary = card.training.data
        if "eval_per_class" not in summary:
            msg = f"{model}: card has no synthetic test split; give --data-dir or --ecotaxa"
            raise click.ClickException(msg)
        data, _ = synthetic_split(
            "test",
            int(summary["eval_per_class"]),
            seed=card.training.seed,
            size=size,
            segmented_share=float(summary["segmented_share"]),
            **model_segmented_args(summary),
        )
        title = "synthetic test split"
    metrics = evaluate_artifact(model, data, out, title=f"{card.name} {card.version} {title}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(metrics, indent=2) + "\n")
    click.echo(
        f"{title}: n={metrics['n']} accuracy={metrics['accuracy']} "
        f"macro_f1={metrics['macro_f1']} ece={metrics['ece']} -> {out}/evaluation.json, "
        "confusion.png, reliability.png"
    )


__all__ = ["evaluate_command", "labelled_data", "ssl_command", "train_command"]
