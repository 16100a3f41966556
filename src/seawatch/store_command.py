"""``seawatch models``: promote a model artifact into a task's store, roll back, list.

The daemon serving the task (``tasks.<task>.model_store``) swaps the promoted model in live,
after its checks (:mod:`seawatch.model_swap`).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seawatch.contracts.card import load_card
from seawatch.contracts.errors import SeawatchError
from seawatch.inference.model_store import promote, read_state, rollback


def _store(ctx: click.Context, task: str, store: Path | None) -> Path:
    if store is not None:
        return store
    settings = ctx.obj["settings"]
    found = settings.tasks.get(task)
    if found is None or found.model_store is None:
        msg = f"tasks.{task}.model_store is not set; give --store DIR or set it in the settings"
        raise click.ClickException(msg)
    return Path(found.model_store)


_STORE = click.option(
    "--store",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The model store (default: the task's tasks.<task>.model_store setting).",
)


@click.group("models")
def models_group() -> None:
    """Model stores: versions side by side, one promoted; the daemon swaps it in live."""


@models_group.command("promote")
@click.argument("artifact", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_STORE
@click.pass_context
def promote_command(ctx: click.Context, artifact: Path, store: Path | None) -> None:
    """Copy ARTIFACT (model.onnx + card.json ...) into its task's store and serve it."""
    try:
        task = load_card(artifact).task
        card = promote(_store(ctx, task, store), artifact, task=task)
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"promoted {card.task} {card.name} {card.release}")


@models_group.command("rollback")
@click.argument("task")
@_STORE
@click.pass_context
def rollback_command(ctx: click.Context, task: str, store: Path | None) -> None:
    """Serve TASK's previously served release again."""
    try:
        release = rollback(_store(ctx, task, store))
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rolled back {task} to {release}")


@models_group.command("list")
@click.argument("task")
@_STORE
@click.pass_context
def list_command(ctx: click.Context, task: str, store: Path | None) -> None:
    """TASK's store: its history of promotions and rollbacks, and the serving release."""
    state = read_state(_store(ctx, task, store))
    table = Table(title=f"{task} model store")
    for column in ("release", "action", "at", "by"):
        table.add_column(column)
    for entry in state["history"]:  # each entry served its release until the next one
        table.add_row(*(escape(str(entry[k])) for k in ("release", "action", "at", "by")))
    Console().print(table)
    click.echo(f"serving: {state['serving'] or 'nothing promoted'}")


__all__ = ["models_group"]
