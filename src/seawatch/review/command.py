"""``seawatch review``: serve the review station, manage its users, export what people
validated (a training folder and an EcoTaxa TSV the training commands read)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from seawatch.cli_params import settings_of
from seawatch.config import Settings
from seawatch.contracts.errors import ConfigError

log = logging.getLogger(__name__)


def accounts_path(settings: Settings) -> Path:
    """The accounts file: ``review.accounts_path`` or ``<store>-review.db``."""
    store = settings.storage.local.path
    return settings.review.accounts_path or store.with_name(f"{store.stem}-review.db")


@click.group("review")
def review_group() -> None:
    """The review station: browse, validate and correct what the models saw."""


@review_group.command("serve")
@click.option("--host", default=None, help="overrides review.host")
@click.option("--port", type=int, default=None, help="overrides review.port")
@click.pass_context
def serve_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the review station on the local store (the daemon may run beside it)."""
    import uvicorn

    from seawatch.ingest.kafka_io import Publisher, ensure_topics
    from seawatch.review.app import create_app, open_station
    from seawatch.review.publish import DecisionPublisher

    settings = settings_of(ctx)
    local = settings.storage.local
    if not local.path.is_file():
        raise click.ClickException(f"no local store at {local.path}; run the daemon first")
    # kafka-python logs every failed connection attempt; the publisher says it once per try
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    station = open_station(
        settings.review, local.path, local.crops_path, accounts_path(settings), local.evidence_root
    )
    if not station.accounts.users():
        click.echo("no users yet: add one with `seawatch review user add NAME --role admin`")
    publisher = None
    topic = settings.review.publish_topic
    if topic:

        def connect() -> Publisher:
            ensure_topics(settings.kafka, [topic], 1)
            return Publisher(settings.kafka)

        publisher = DecisionPublisher(local.path, connect, topic)
        publisher.start()
    gallery_edits = _gallery_sender(settings, local.path)
    progress = None
    if settings.storage.influx.url:
        from seawatch.review.progress import ProgressWriter
        from seawatch.storage.influx_outbox import OutboxSink

        outbox = local.path.with_name(f"{local.path.stem}-review-outbox.db")
        sink = OutboxSink(settings.storage.influx, settings.storage.outbox, outbox)
        progress = ProgressWriter(local.path, sink, settings.review.progress_interval_s).start()
    app = create_app(station)
    where = f"http://{host or settings.review.host}:{port or settings.review.port}/"
    click.echo(f"review station on {where} (store {local.path})")
    try:
        uvicorn.run(
            app,
            host=host or settings.review.host,
            port=port or settings.review.port,
            log_level="warning",
        )
    finally:
        if publisher is not None:
            publisher.close()
        if gallery_edits is not None:
            gallery_edits.close()
        if progress is not None:
            progress.close()
        station.close()


def _gallery_sender(settings, store: Path):
    """The thread that writes undone merges and the fish page's merges and renames to the
    shared fish gallery's topic; None when the fish task keeps no shared gallery (then the
    store's ``fish`` rows change, and a running daemon's gallery does not)."""
    import functools

    from seawatch.contracts.task import parse_options
    from seawatch.models.fish.gallery_log import GalleryLog
    from seawatch.models.fish.options import FishOptions
    from seawatch.review.gallery_sender import GallerySender

    fish = settings.tasks.get("fish")
    if fish is None or not fish.enabled:
        return None
    options = parse_options(FishOptions, "fish", fish.options)
    if not options.shared_gallery:
        return None
    topic = options.gallery_topic or f"{settings.kafka.group_id}.fish-gallery"
    open_log = functools.partial(GalleryLog, settings.kafka, topic, create=False)
    return GallerySender(store, open_log).start()


@review_group.group("user")
def user_group() -> None:
    """Review station accounts."""


@user_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "annotator", "reviewer", "admin"]),
    default="annotator",
    show_default=True,
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="read the password from this file (else asked for, twice)",
)
@click.pass_context
def user_add_command(ctx: click.Context, name: str, role: str, password_file: Path | None) -> None:
    """Add a user (or set a user's password and role); logs them out everywhere."""
    from seawatch.review.accounts import Accounts, Role

    if password_file is not None:
        password = password_file.read_text().strip()
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    accounts = Accounts(accounts_path(settings_of(ctx)))
    try:
        accounts.add_user(name, password, Role.parse(role))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        accounts.close()
    click.echo(f"user {name} ({role}) saved")


@user_group.command("list")
@click.pass_context
def user_list_command(ctx: click.Context) -> None:
    """Every user and their role."""
    from seawatch.review.accounts import Accounts

    accounts = Accounts(accounts_path(settings_of(ctx)))
    for name, role in accounts.users():
        click.echo(f"{name}\t{role.name.lower()}")
    accounts.close()


@review_group.command("export")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write (created).",
)
@click.option(
    "--layout",
    type=click.Choice(["ecotaxa", "folder"]),
    default="ecotaxa",
    show_default=True,
    help="ecotaxa: ecotaxa_seawatch.tsv with the crops beside it (seawatch train plankton "
    "--ecotaxa reads it); folder: one folder per taxon (--data-dir reads it).",
)
@click.option(
    "--status",
    type=click.Choice(["validated", "dubious", "predicted"]),
    default="validated",
    show_default=True,
)
@click.option("--cruise", default=None, help="Only objects of this cruise.")
@click.pass_context
def export_command(
    ctx: click.Context, out: Path, layout: str, status: str, cruise: str | None
) -> None:
    """Export what people validated as a training set (crops and labels)."""
    from seawatch.storage.export import ExportFilter
    from seawatch.storage.image_export import export_folder

    local = settings_of(ctx).storage.local
    for path, what in ((local.path, "local store"), (local.crops_path, "crop store")):
        if not path.is_file():
            raise click.ClickException(f"no {what} at {path}; run the daemon first")
    flt = ExportFilter(cruise=cruise, status=status)
    done = export_folder(local.path, local.crops_path, out, flt, by_taxon=layout == "folder")
    click.echo(
        f"wrote {done.written} {status} objects to {out} ({layout}); "
        f"{done.without_crop} left out (crop not kept)"
    )


__all__ = ["accounts_path", "review_group"]
