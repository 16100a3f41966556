"""Click commands ``seawatch dashboards apply`` and ``seawatch dashboards export DIR``.

The lead CLI registers the group (``cli.add_command(dashboards_group)``); the settings come
from ``ctx.obj["settings"]`` like every other command.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from seawatch.config import Settings
from seawatch.contracts.errors import SeawatchError

_console = Console()


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.obj or {}
    if "settings" not in obj:
        from seawatch.config import load_settings

        obj["settings"] = load_settings()
        ctx.obj = obj
    return obj["settings"]


@click.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards, datasource and alert rules as code."""


@dashboards_group.command("apply")
@click.pass_context
def apply_command(ctx: click.Context) -> None:
    """Provision a running Grafana (dashboards.grafana.url): folder, InfluxDB datasource,
    dashboards, alert rules and contact point. A second run changes nothing."""
    from seawatch.dashboards.provision import apply

    try:
        report = apply(_settings(ctx), echo=lambda line: _console.print(escape(line)))
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    for note in report.notes:
        _console.print(f"[yellow]note[/]: {escape(note)}")
    _console.print(report.summary())


@dashboards_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--dashboards-path",
    default=None,
    help="The JSON folder as Grafana sees it; default: "
    "/etc/grafana/provisioning/dashboards/seawatch.",
)
@click.option(
    "--token-env",
    default="SEAWATCH_INFLUX_TOKEN",
    show_default=True,
    help="Grafana's environment variable holding the InfluxDB token.",
)
@click.pass_context
def export_command(
    ctx: click.Context, directory: Path, dashboards_path: str | None, token_env: str
) -> None:
    """Write Grafana's file provisioning (datasources/, dashboards/, alerting/) into
    DIRECTORY, for Grafana servers this machine cannot reach."""
    from seawatch.dashboards.provision_files import DEFAULT_DASHBOARDS_PATH, export

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        raise click.BadParameter(f"{token_env!r} is no variable name", param_hint="--token-env")
    try:
        written = export(
            _settings(ctx),
            directory,
            dashboards_path=dashboards_path or DEFAULT_DASHBOARDS_PATH,
            token_env=token_env,
        )
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        _console.print(f"wrote {escape(str(path))}")
    _console.print(
        f"{len(written)} files; copy {escape(str(directory))}/* to /etc/grafana/provisioning/"
    )


__all__ = ["dashboards_group"]
