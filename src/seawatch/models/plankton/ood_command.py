"""``seawatch train plankton-ood``: fit the out-of-distribution score of a plankton model."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from seawatch.models.plankton.ood_fit import TARGET, K

DEFAULT_MODEL = Path("models/plankton")


@click.command("plankton-ood")
@click.option(
    "--model",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=DEFAULT_MODEL,
    show_default=True,
)
@click.option(
    "--method",
    type=click.Choice(["outlier_exposure", "knn_cosine"]),
    default="outlier_exposure",
    show_default=True,
    help="the scorer: outlier exposure over several signals, or the kNN distance alone",
)
@click.option(
    "--stage3/--no-stage3",
    default=True,
    show_default=True,
    help="outlier_exposure: the pooled third-stage map and its kNN distance as inputs too",
)
@click.option("--k", default=K, show_default=True, help="knn_cosine: the k-th nearest object")
@click.option(
    "--target",
    default=TARGET,
    show_default=True,
    help="share of validation objects reported unknown (softmax and OOD rules together)",
)
@click.option(
    "--outliers-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="outlier_exposure: a folder of images of organisms the model must call unknown "
    "(other taxa, e.g. an EcoTaxa export's other categories); they join the drawn outliers",
)
@click.pass_context
def ood_command(
    ctx: click.Context,
    model: Path,
    method: str,
    stage3: bool,
    k: int,
    target: float,
    outliers_dir: Path | None,
) -> None:
    """Fit the "unknown means unknown" score and its threshold, written as ood.npz beside
    the model and into its card: by default the outlier-exposure scorer (features, softmax
    and image statistics, and the pooled third-stage map, against drawn outliers; needs
    scikit-learn), or a kNN bank of training features alone. A graph without the features
    or stage3 output is re-exported from the artifact's weights first (probs and features
    unchanged)."""
    from seawatch.contracts.errors import SeawatchError
    from seawatch.models.plankton.ood_fit import fit_ood
    from seawatch.models.plankton.ood_oe_fit import fit_oe

    words = [ctx.command_path, "--model", str(model)]
    words += [] if method == "outlier_exposure" else ["--method", method]
    words += [] if stage3 else ["--no-stage3"]
    words += [] if k == K else ["--k", str(k)]
    words += [] if target == TARGET else ["--target", f"{target:g}"]
    words += [] if outliers_dir is None else ["--outliers-dir", str(outliers_dir)]
    if outliers_dir is not None and method != "outlier_exposure":
        msg = "--outliers-dir needs --method outlier_exposure (the kNN score learns no outliers)"
        raise click.BadParameter(msg, param_hint="--outliers-dir")
    try:
        known = None
        if outliers_dir is not None:
            known = _known_outliers(model, outliers_dir)
        if method == "outlier_exposure":
            report = fit_oe(
                model,
                command=" ".join(words),
                target=target,
                stage3=stage3,
                known_outliers=known,
            )
        else:
            report = fit_ood(model, command=" ".join(words), k=k, target=target)
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    spec, calib = report["ood"], report["ood"]["calibration"]
    if report["reexport"].get("reexported"):
        diff = report["reexport"]["probs_max_abs_diff_vs_previous_graph"]
        outputs = ", ".join(report["reexport"]["outputs"])
        click.echo(f"re-exported {model}/model.onnx with outputs {outputs} (probs diff {diff:g})")
    click.echo(
        f"wrote {model}/{spec['file']} and card.json: threshold {spec['threshold']:.4f}; "
        f"unknown on validation {calib['validation']['unknown']:.1%} "
        f"(softmax alone {calib['validation']['softmax_alone']:.1%}); held-out taxa "
        f"{calib['held_out_taxa']['unknown']:.1%} "
        f"(softmax alone {calib['held_out_taxa']['softmax_alone']:.1%})"
        + (f"; {len(known)} known outliers from {outliers_dir}" if known is not None else "")
    )


def _known_outliers(model: Path, root: Path) -> np.ndarray:
    """The images of ``--outliers-dir`` as the model's prepared crops (gray models only)."""
    from seawatch.contracts.card import load_card
    from seawatch.contracts.errors import ConfigError
    from seawatch.models.plankton.ssl_command import unlabelled_crops

    card = load_card(model)
    if card.input.channels != 1:
        msg = f"--outliers-dir: {model} reads colour crops; the OOD fit serves gray models only"
        raise ConfigError(msg)
    crops, skipped = unlabelled_crops(root, size=card.input.size, option="--outliers-dir")
    for line in skipped[:5]:
        click.echo(f"skipped {line}", err=True)
    return crops


__all__ = ["ood_command"]
