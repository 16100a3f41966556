"""``seawatch evaluate fish-stream``: the open-set stream figures of the reserved tank
streams onto the fish card (:mod:`seawatch.models.fish.stream_card`)."""

from __future__ import annotations

from pathlib import Path

import click

from seawatch.contracts.errors import SeawatchError

DEFAULT_MODEL = Path("models/fish")


@click.command("fish-stream")
@click.argument(
    "results", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option("--model", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
def stream_command(results: tuple[Path, ...], model: Path) -> None:
    """Write the daemon's open-set figures on reserved whole-frame streams (RESULTS: files of
    benchmarks/fish_open_set_frames.py; a later file's stream replaces an earlier one's) into
    the card's metrics.open_set_stream. The weights and the release do not change."""
    from seawatch.models.fish.stream_card import GOALS, write_stream_figures

    try:
        section = write_stream_figures(model, results)
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    pooled = section["pooled"]
    for row in section["per_stream"]:
        click.echo(
            f"{row['seed']}: known declared new {row['known_declared_new']:.2%}, known wrong "
            f"{row['known_wrong']:.2%}, ids per new fish {row['ids_per_new_fish']:.2f}, mixed "
            f"ids {row['mixed_ids']}/{row['ids']}, alerts {row['new_fish_alerts']} for "
            f"{row['new_fish']} new fish{'' if row['goals_met'] else ' (a goal not met)'}"
        )
    click.echo(
        f"pooled over {pooled['streams']} streams: known declared new "
        f"{pooled['known_declared_new']:.2%} (<= {GOALS['known_declared_new']:.0%}), known "
        f"wrong {pooled['known_wrong']:.2%}, ids per new fish {pooled['ids_per_new_fish']:.2f}, "
        f"mixed ids {pooled['mixed_ids']}/{pooled['ids']}, alerts {pooled['new_fish_alerts']} "
        f"for {pooled['new_fish']}; every goal on {pooled['streams_meeting_every_goal']} of "
        f"{pooled['streams']} streams -> {model}/card.json"
    )


__all__ = ["stream_command"]
