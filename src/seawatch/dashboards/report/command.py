"""``seawatch report``: write the self-contained HTML cruise report."""

from __future__ import annotations

from pathlib import Path

import click

from seawatch.cli_params import capture_time
from seawatch.config import Settings
from seawatch.contracts.errors import SeawatchError


@click.command("report")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("seawatch-report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "--source",
    type=click.Choice(["local", "influx"]),
    default="local",
    show_default=True,
    help="local: the SQLite store (storage.local.path); influx: InfluxQL at storage.influx.url "
    "in dashboards.database.",
)
@click.option("--cruise", default=None, help="Only this cruise.")
@click.option("--start", callback=capture_time, default=None, help="From (RFC 3339 or epoch ns).")
@click.option(
    "--end", callback=capture_time, default=None, help="Until, exclusive (RFC 3339 or epoch ns)."
)
@click.option(
    "--evidence",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Evidence directory (thumbnails, heat maps); default: storage.local.evidence_root.",
)
@click.option("--title", default=None, help="Page title; default names the cruise.")
@click.pass_context
def report_command(
    ctx: click.Context,
    out: Path,
    source: str,
    cruise: str | None,
    start: int | None,
    end: int | None,
    evidence: Path | None,
    title: str | None,
) -> None:
    """Write a self-contained HTML cruise report (no network needed to view or print it)."""
    from seawatch.dashboards.report.data import from_local_store
    from seawatch.dashboards.report.data_influx import from_influx
    from seawatch.dashboards.report.html import render

    settings: Settings = ctx.obj["settings"]
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    evidence_root = evidence or settings.storage.local.evidence_root
    try:
        if source == "influx":
            data = from_influx(
                _influx_client(settings), cruise, start, end, evidence_root=evidence_root
            )
        else:
            data = from_local_store(settings.storage.local.path, evidence_root, cruise, start, end)
        page = render(data, title=title)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from exc
    click.echo(
        f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB): {len(data.frames)} frames, "
        f"{data.object_total()} objects, {len(data.flagged())} flagged otoliths, "
        f"{len(data.individuals())} fish individuals"
    )


def _influx_client(settings: Settings):
    from seawatch.dashboards.influxql import InfluxQLClient

    influx = settings.storage.influx
    if influx.url is None:
        raise click.UsageError(
            "--source influx needs storage.influx.url (SEAWATCH_STORAGE__INFLUX__URL)"
        )
    token = influx.token.get_secret_value() or None
    return InfluxQLClient(influx.url, settings.dashboards.database, token=token)


__all__ = ["report_command"]
