"""``seawatch train plankton-ranking``: fit the review queue's "most likely wrong" score to a
plankton model (ONNX Runtime and numpy; no torch)."""

from __future__ import annotations

from pathlib import Path

import click

from seawatch.models.plankton.command import DEFAULT_MODEL, labelled_data


@click.command("plankton-ranking")
@click.option(
    "--model",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=DEFAULT_MODEL,
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the artifact here instead (default: the card in --model is updated).",
)
@labelled_data
@click.option("--validated-only", is_flag=True, help="EcoTaxa: only 'validated' rows.")
@click.option(
    "--frame-kind",
    type=click.Choice(["roi", "full"]),
    default=None,
    help="Your data: the kind of frame every crop came from (an EcoTaxa acq_frame_kind "
    "column wins). Not known: the full-frame term is left out.",
)
@click.option(
    "--seed",
    default=7_100_013,
    show_default=True,
    help="synthetic: the validation cruise's seed",
)
@click.option("--objects", default=10_000, show_default=True, help="synthetic: objects drawn")
@click.option(
    "--full-share", default=0.05, show_default=True, help="synthetic: share of full frames"
)
@click.pass_context
def ranking_command(
    ctx: click.Context,
    model: Path,
    out: Path | None,
    data_dir: Path | None,
    ecotaxa: Path | None,
    validated_only: bool,
    frame_kind: str | None,
    seed: int,
    objects: int,
    full_share: float,
) -> None:
    """Fit the review queue's "most likely wrong" score to a model on labelled objects (a
    synthetic validation cruise, or your validated crops) and write it into its card.

    ONNX Runtime and numpy only (no torch); the graph and the release do not change."""
    from seawatch.contracts.errors import SeawatchError
    from seawatch.models.plankton.ranking_fit import calibrate_ranking

    words = [ctx.command_path, "--model", str(model)]
    words += ["--out", str(out)] if out is not None else []
    if data_dir is not None or ecotaxa is not None:
        words += ["--data-dir", str(data_dir)] if data_dir else ["--ecotaxa", str(ecotaxa)]
        words += ["--validated-only"] if validated_only else []
        words += ["--frame-kind", frame_kind] if frame_kind else []
    else:
        words += ["--seed", str(seed), "--objects", str(objects), "--full-share", f"{full_share:g}"]
    try:
        card = calibrate_ranking(
            model,
            out,
            data_dir=data_dir,
            ecotaxa=ecotaxa,
            validated_only=validated_only,
            frame_kind=frame_kind,
            seed=seed,
            objects=objects,
            full_share=full_share,
            command=" ".join(words),
        )
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    ranking = card.ranking or {}
    fitted = ranking.get("fitted", {})
    found = fitted.get("in_sample_errors_in_first_10pct", {})
    click.echo(
        f"wrote {out or model}/card.json ({card.release}): ranking fitted on "
        f"{fitted.get('objects')} objects with {fitted.get('errors')} model errors "
        f"({fitted.get('data', {}).get('source')}); errors in the first 10 % (in sample): "
        f"{found.get('fitted', float('nan')):.1%}, least confidence "
        f"{found.get('least_confidence', float('nan')):.1%}"
    )


__all__ = ["ranking_command"]
