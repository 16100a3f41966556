"""The one entry point: ``seawatch run | demo | broker | publish | train | evaluate | gallery |
dashboards | report | engine | export | config``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from seawatch import __version__
from seawatch.cli_params import task_name
from seawatch.config import Settings, load_settings
from seawatch.contracts.errors import SeawatchError
from seawatch.dashboards.commands import dashboards_group
from seawatch.dashboards.report.command import report_command
from seawatch.engine_command import engine_group
from seawatch.export_command import export_group
from seawatch.models.fish import command as fish_commands
from seawatch.models.fish import segment_command as fish_segmentation_commands
from seawatch.models.fish.stream_command import stream_command as fish_stream_command
from seawatch.models.otolith import command as otolith_commands
from seawatch.models.plankton import command as plankton_commands
from seawatch.models.plankton.oe_command import oe_command as plankton_oe_command
from seawatch.models.plankton.ood_command import ood_command as plankton_ood_command
from seawatch.models.plankton.ranking_command import ranking_command as plankton_ranking
from seawatch.models.segmentation import command as segmentation_commands
from seawatch.review.command import review_group
from seawatch.store_command import models_group

log = logging.getLogger("seawatch")
console = Console(stderr=True)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in _LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for handler in logging.getLogger().handlers:
        handler.addFilter(_fold_library_tracebacks)


_LIBRARIES = ("kafka", "urllib3", "influxdb_client")


def _fold_library_tracebacks(record: logging.LogRecord) -> bool:
    """A client library's expected network errors (a broker restarting, a connection reset)
    come with tracebacks; keep their one line and fold the exception into it."""
    if record.exc_info and record.name.split(".")[0] in _LIBRARIES:
        kind, error = record.exc_info[0], record.exc_info[1]
        name = kind.__name__ if kind is not None else "error"
        record.msg, record.args = f"{record.getMessage()} error={name}: {error}", ()
        record.exc_info, record.exc_text = None, None
    return True


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML settings file; SEAWATCH_<SECTION>__<FIELD> variables override it.",
)
@click.version_option(__version__, prog_name="seawatch")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """seawatch: streaming in-situ monitoring of plankton, otoliths and fish."""
    settings = load_settings(config_path)
    _setup_logging(settings.log_level)
    ctx.obj = {"settings": settings}


@cli.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Daemon processes per lane, each lane's in its consumer group (needs as many "
    "partitions per topic).",
)
@click.option("--worker-index", type=int, default=None, hidden=True)
@click.option("--lane", default=None, hidden=True, help="Serve this lane only (a worker's).")
@click.pass_context
def run(ctx: click.Context, workers: int, worker_index: int | None, lane: str | None) -> None:
    """Run the daemon: consume frames, classify, store, until SIGTERM or Ctrl-C."""
    from seawatch.daemon import build_daemon
    from seawatch.health.operations import Operations
    from seawatch.lanes import find_lane, plan_lanes
    from seawatch.stats import PipelineStats

    settings = _settings(ctx)
    served = find_lane(settings, lane) if lane is not None else None
    if served is None and (workers > 1 or len(plan_lanes(settings)) > 1):
        sys.exit(_supervise(ctx, settings, workers))
    if worker_index is not None:
        settings = _as_worker(settings, worker_index)
    log.info("settings %s", json.dumps(settings.masked(), separators=(",", ":")))
    stats = PipelineStats()

    def _stop_starting(signum: int, _frame: object) -> None:
        # Loading models and joining the group take seconds (a restarted worker, a
        # supervisor stopping): nothing is consumed yet, so stopping is leaving, cleanly.
        log.info("stopped_while_starting signal=%s", signal.Signals(signum).name)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop_starting)
    signal.signal(signal.SIGINT, _stop_starting)
    with Operations(settings, stats) as operations:
        daemon = build_daemon(
            settings, stats, worker=worker_index, heartbeat=operations.heartbeat, lane=served
        )

        def _stop(signum: int, _frame: object) -> None:
            log.info("stopping signal=%s", signal.Signals(signum).name)
            operations.stopping()
            daemon.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        operations.attach(daemon.pipeline)
        try:
            stats = daemon.run()
        finally:
            operations.stopping()
            daemon.close()
    log.info(
        "stopped frames=%d objects=%d dead_letters=%d",
        stats.frames,
        stats.objects,
        stats.dead_letters,
    )


def _supervise(ctx: click.Context, settings: Settings, workers: int) -> int:
    from seawatch.workers import supervise

    config_path = ctx.parent.params.get("config_path") if ctx.parent else None
    return supervise(settings, workers, ["--config", str(config_path)] if config_path else [])


def _as_worker(settings: Settings, index: int) -> Settings:
    """Worker ``index`` of a supervisor: its own outbox file beside the shared store's, its
    own HTTP port (``http.port + index``); a task's ``threads: all`` becomes 1 (a worker a
    core: N workers of all the cores each would fight over them)."""
    from seawatch.workers import worker_outbox

    storage = settings.storage
    outbox = storage.outbox.model_copy(update={"path": worker_outbox(storage.outbox_path, index)})
    http = settings.http.model_copy(update={"port": settings.http.port + index})
    tasks = {
        name: task.model_copy(update={"threads": 1}) if task.threads == "all" else task
        for name, task in settings.tasks.items()
    }
    return settings.model_copy(
        update={
            "storage": storage.model_copy(update={"outbox": outbox}),
            "http": http,
            "tasks": tasks,
        }
    )


@cli.command()
@click.option("--frames", default=2000, show_default=True, help="Messages to publish.")
@click.option(
    "--broken-share",
    default=0.01,
    show_default=True,
    help="Share of deliberately broken messages (they must land in the DLQ).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--verbose",
    is_flag=True,
    help="Print every log line (each alert and dead letter too); else they go to the log file.",
)
@click.pass_context
def demo(ctx: click.Context, frames: int, broken_share: float, seed: int, verbose: bool) -> None:
    """Embedded broker + synthetic stream + daemon, then a summary. No servers needed."""
    import dataclasses

    from seawatch.demo import run_demo, summary_table
    from seawatch.demo_output import (
        demo_config,
        demo_log_path,
        demo_logging,
        follow_up_lines,
        program_name,
    )

    settings = _settings(ctx)
    config_path = ctx.parent.params.get("config_path") if ctx.parent else None
    follow_config = config_path
    # The demo starts from an empty store of its own, so it never touches the daemon's; the
    # commands it prints at the end then need a settings file that points at that store.
    if settings.storage.local.path == Path("seawatch-data/seawatch.db"):
        local = settings.storage.local.model_copy(update={"path": Path("seawatch-data/demo.db")})
        storage = settings.storage.model_copy(update={"local": local})
        settings = settings.model_copy(update={"storage": storage})
        follow_config = demo_config(local.path, config_path)
    store = settings.storage.local.path
    out = Console()
    with demo_logging(demo_log_path(store), out, verbose=verbose) as demo_log:
        result = run_demo(
            settings, frames=frames, broken_share=broken_share, seed=seed, console=out
        )
    out.print(summary_table(dataclasses.replace(result, log=demo_log.path)))
    held_back = demo_log.held_back_line()
    if held_back:
        out.print(held_back, style="yellow", soft_wrap=True)
    out.print()
    for line in follow_up_lines(settings, program_name(), follow_config):
        out.print(line, soft_wrap=True, markup=False, highlight=False)
    if result.stats.processed < frames:
        raise click.ClickException(f"only {result.stats.processed} of {frames} messages handled")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9092, show_default=True)
def broker(host: str, port: int) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) until Ctrl-C."""
    from seawatch.ingest.broker import EmbeddedBroker

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(0)  # unwinds the context manager, which stops the broker

    signal.signal(signal.SIGTERM, _exit)
    with EmbeddedBroker(host, port) as running:
        console.print(f"broker listening on [cyan]{running.bootstrap_servers}[/] (Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--topic", default="frames.plankton", show_default=True)
@click.option("--instrument", required=True, help="Instrument id (also the message key).")
@click.option(
    "--task",
    default="plankton",
    show_default=True,
    callback=task_name,
    help="The frames' task: plankton, otolith, fish or a plug-in task's name.",
)
@click.option("--frame-kind", type=click.Choice(["roi", "full"]), default="roi", show_default=True)
@click.option("--cruise", default="none")
@click.option("--station", default="none")
@click.option("--pixel-size-um", type=float, default=None)
@click.option(
    "--metadata",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV with a 'file' column and header-named columns.",
)
@click.option(
    "--claim-check-over",
    type=int,
    default=None,
    help="Send files larger than this many bytes as file:// claim checks.",
)
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: settings).")
@click.pass_context
def publish(
    ctx: click.Context,
    directory: Path,
    topic: str,
    instrument: str,
    task: str,
    frame_kind: str,
    cruise: str,
    station: str,
    pixel_size_um: float | None,
    metadata: Path | None,
    claim_check_over: int | None,
    bootstrap: str | None,
) -> None:
    """Publish a folder of images (with optional per-file CSV metadata) to Kafka."""
    from seawatch.contracts.frames import FrameKind
    from seawatch.ingest.kafka_io import Publisher
    from seawatch.ingest.publish import directory_messages, publish_messages

    settings = _settings(ctx)
    servers = bootstrap or settings.kafka.bootstrap_servers
    messages = directory_messages(
        directory,
        instrument=instrument,
        task=task,
        frame_kind=FrameKind(frame_kind),
        cruise=cruise,
        station=station,
        pixel_size_um=pixel_size_um,
        metadata_csv=metadata,
        claim_check_over=claim_check_over,
    )
    publisher = Publisher(settings.kafka.model_copy(update={"bootstrap_servers": servers}))
    try:
        sent = publish_messages(publisher, topic, messages)
    finally:
        publisher.close()
    console.print(f"published {sent} frames from {directory} to {topic} on {servers}")


@cli.group()
def train() -> None:
    """Train a model and write its artifact (ONNX + card). Needs the `train` extra (torch)."""


train.add_command(plankton_commands.train_command)
train.add_command(plankton_commands.ssl_command)
train.add_command(plankton_ranking)
train.add_command(plankton_ood_command)
train.add_command(plankton_oe_command)
train.add_command(otolith_commands.train_command)
train.add_command(otolith_commands.train_teacher_command)
train.add_command(otolith_commands.calibrate_command)
train.add_command(otolith_commands.views_command)
train.add_command(fish_commands.train_command)
train.add_command(segmentation_commands.train_command)
train.add_command(fish_segmentation_commands.train_command)


@cli.group()
def evaluate() -> None:
    """Score a model artifact on held-out data through ONNX Runtime; write metrics and plots."""


evaluate.add_command(plankton_commands.evaluate_command)
evaluate.add_command(otolith_commands.evaluate_command)
evaluate.add_command(fish_commands.evaluate_command)
evaluate.add_command(fish_stream_command)
cli.add_command(fish_commands.gallery_group)
cli.add_command(dashboards_group)
cli.add_command(report_command)
cli.add_command(engine_group)
cli.add_command(models_group)
cli.add_command(review_group)


cli.add_command(export_group)


@cli.group()
def config() -> None:
    """Inspect settings."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings (secrets masked) as JSON."""
    click.echo(json.dumps(_settings(ctx).masked(), indent=2))


@config.command("reference", context_settings={"ignore_unknown_options": True})
@click.option("--out", type=click.Path(path_type=Path), default=None, help="File to write.")
@click.option("--check", is_flag=True, help="Exit 1 when the file differs from the settings.")
def config_reference(out: Path | None, check: bool) -> None:
    """The configuration reference (Markdown), generated from the settings model."""
    from seawatch.config_reference import main as reference_main

    argv = [*(["--out", str(out)] if out else []), *(["--check"] if check else [])]
    code = reference_main(argv)
    if code:
        sys.exit(code)


def main() -> None:
    """Console entry point: SeawatchError becomes a one-line message and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except SeawatchError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


__all__ = ["cli", "main"]
