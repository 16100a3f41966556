"""``seawatch export``: results from the local store as files (EcoTaxa TSV, Parquet, or a
zip with the kept crops)."""

from __future__ import annotations

from pathlib import Path

import click

from seawatch.cli_params import capture_time, settings_of


@click.group("export")
def export_group() -> None:
    """Export results from the local store."""


@export_group.command("objects")
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Local store (SQLite); default: storage.local.path from the settings.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file; the format follows its suffix (.tsv, .parquet or .zip) unless --format.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tsv", "parquet", "zip"]),
    default=None,
    help="tsv (EcoTaxa import), parquet, or zip (the TSV with every kept crop, for EcoTaxa); "
    "default: from the --out suffix.",
)
@click.option(
    "--status",
    type=click.Choice(["predicted", "validated", "dubious"]),
    default=None,
    help="Only objects of this review status.",
)
@click.option("--cruise", default=None, help="Only frames of this cruise.")
@click.option(
    "--since",
    "since_ns",
    callback=capture_time,
    default=None,
    help="From this capture time (inclusive): RFC 3339 or ns.",
)
@click.option(
    "--until",
    "until_ns",
    callback=capture_time,
    default=None,
    help="Up to this capture time (exclusive): RFC 3339 or ns.",
)
@click.pass_context
def export_objects_command(
    ctx: click.Context,
    store: Path | None,
    out: Path,
    fmt: str | None,
    cruise: str | None,
    since_ns: int | None,
    until_ns: int | None,
    status: str | None,
) -> None:
    """Write per-object plankton results as an EcoTaxa-importable TSV, as Parquet, or as a
    zip EcoTaxa imports with the kept crops (named by img_file_name).

    The annotation columns say what a person decided in the review station (the label and
    validated / dubious), else the model's prediction.
    """
    from seawatch.storage.export import ExportFilter, export_objects, format_from_path

    path = store or settings_of(ctx).storage.local.path
    if not path.is_file():
        hint = "--store" if store else "--store (default: storage.local.path)"
        msg = f"no local store at {path}; run the daemon first or pass the store's path"
        raise click.BadParameter(msg, param_hint=hint)
    chosen = fmt or ("zip" if out.suffix.lower() == ".zip" else format_from_path(out))
    if chosen is None:
        msg = (
            f"cannot tell the format of {out.name!r}; "
            "name it .tsv, .parquet or .zip, or pass --format"
        )
        raise click.BadParameter(msg, param_hint="--out")
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        msg = f"--since {since_ns} is not before --until {until_ns}; swap them or widen the range"
        raise click.BadParameter(msg, param_hint="--since/--until")
    flt = ExportFilter(cruise=cruise, since_ns=since_ns, until_ns=until_ns, status=status)
    if chosen == "zip":
        from seawatch.storage.image_export import export_zip

        crops = settings_of(ctx).storage.local.crops_path
        if store is not None:
            crops = store.with_name(f"{store.stem}-crops.db")
        if not crops.is_file():
            raise click.ClickException(f"no crop store at {crops}; the daemon keeps crops there")
        done = export_zip(path, crops, out, flt)
        click.echo(
            f"wrote {done.written} objects with their crops to {out}; "
            f"{done.without_crop} left out (crop not kept)"
        )
        return
    n = export_objects(path, out, chosen, flt)
    click.echo(f"wrote {n} objects to {out} ({chosen})")


__all__ = ["export_group"]
