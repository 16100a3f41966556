"""Click command ``seawatch engine build MODEL_DIR``: build a TensorRT engine for this GPU,
parity-check it against ONNX Runtime CPU and cache it beside the model.

The lead CLI registers the group (``cli.add_command(engine_group)``). Without TensorRT or a
CUDA device the command stops with one line saying why, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from seawatch.contracts.errors import SeawatchError

_console = Console(stderr=True)


def _default_max_batch(ctx: click.Context) -> int:
    settings = (ctx.obj or {}).get("settings")
    if settings is None:
        from seawatch.config import load_settings

        settings = load_settings()
    return settings.inference.max_batch


@click.group("engine")
def engine_group() -> None:
    """TensorRT engines: build, parity-check and cache them beside the model."""


@engine_group.command("build")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp16", "fp32", "int8"]),
    default="auto",
    show_default=True,
    help="auto: fp16 where the GPU runs it at full rate, else fp32.",
)
@click.option(
    "--max-batch",
    type=click.IntRange(1, 4096),
    default=None,
    help="Largest batch of the optimisation profile; default inference.max_batch (the daemon "
    "looks the engine up with that value).",
)
@click.option(
    "--calibration",
    default=None,
    help="int8 on TensorRT 10: a folder of sample crops, or 'synthetic' for the project's "
    "generator.",
)
@click.option(
    "--calibration-images",
    type=click.IntRange(1, 100_000),
    default=512,
    show_default=True,
    help="int8: sample images for calibration, in batches of the profile's opt batch "
    "(--max-batch); at least one full batch.",
)
@click.option(
    "--samples",
    type=click.IntRange(1, 100_000),
    default=256,
    show_default=True,
    help="Sample inputs for the parity check.",
)
@click.option("--rebuild", is_flag=True, help="Build even when a matching engine is cached.")
@click.pass_context
def build_command(
    ctx: click.Context,
    model_dir: Path,
    precision: str,
    max_batch: int | None,
    calibration: str | None,
    calibration_images: int,
    samples: int,
    rebuild: bool,
) -> None:
    """Build (or find cached) the TensorRT engine of MODEL_DIR for this GPU, check it against
    ONNX Runtime CPU (top-1 agreement, each output's relative error) and refuse it outside
    tolerance."""
    from seawatch.inference.selection import probe_tensorrt

    max_batch = max_batch or _default_max_batch(ctx)
    if calibration is not None and calibration_images < max_batch:
        msg = (
            f"--calibration-images {calibration_images} is less than one calibration batch: "
            f"TensorRT calibrates at the profile's opt batch ({max_batch}, --max-batch); "
            "give at least that many"
        )
        raise click.ClickException(msg)
    reason = probe_tensorrt(model_dir)
    if reason is not None:
        msg = (
            f"cannot build a TensorRT engine on this machine: {reason}. Build it on the machine "
            "with the NVIDIA GPU that will serve the model (an engine is tied to the GPU and "
            "the TensorRT version); meanwhile inference.backend auto uses ONNX Runtime"
        )
        raise click.ClickException(msg)
    try:
        result = _build(
            model_dir, precision, max_batch, calibration, calibration_images, samples, rebuild
        )
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"TensorRT engine for {escape(str(model_dir))}", show_header=False)
    key = result.key
    parity = result.parity
    rows = [
        ("engine", str(result.plan_path)),
        ("status", f"built ({result.reason})" if result.built else "cached"),
        ("GPU", f"{key.gpu_name} (sm_{key.compute_capability})"),
        ("TensorRT", key.tensorrt_version),
        ("precision", key.precision),
        ("batch profile", f"{key.min_batch}/{key.opt_batch}/{key.max_batch}"),
        ("parity samples", str(parity.get("samples"))),
        ("top-1 agreement", f"{parity.get('top1_agreement')} (min {parity.get('min_top1')})"),
        *(
            (
                f"{o['name']} ({o['kind']})",
                f"relative error {o['rel_diff']:.3g} (max {parity.get('tolerance_rel')}), "
                f"|diff| {o['abs_diff']:.3g}",
            )
            for o in parity.get("outputs", [])
        ),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))
    Console().print(table)


def _build(
    model_dir: Path,
    precision: str,
    max_batch: int,
    calibration: str | None,
    calibration_images: int,
    samples: int,
    rebuild: bool,
):
    from seawatch.contracts.card import load_card
    from seawatch.inference.parity import folder_inputs, iter_batches, sample_inputs
    from seawatch.inference.tensorrt_backend import ensure_engine
    from seawatch.registry import plugin

    card = load_card(model_dir)
    task = plugin(card.task)
    batches = None
    if calibration is not None:
        if calibration == "synthetic":
            images = sample_inputs(card, calibration_images, seed=12345, make=task.sample_inputs)
        else:
            images = folder_inputs(
                card, Path(calibration), limit=calibration_images, model_input=task.model_input
            )
        # TensorRT calibrates a dynamic-batch network at its calibration profile's opt shape:
        # every batch holds exactly opt (= max) images; a partial last batch is dropped.
        batches = list(iter_batches(images, max_batch))
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, step: int, steps: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(escape(phase), total=max(steps, 1))
            progress.update(tasks[phase], completed=step, total=max(steps, 1))

        return ensure_engine(
            model_dir,
            max_batch=max_batch,
            precision=precision,
            calibration=batches,
            has_calibration=batches is not None,
            parity_samples=samples,
            rebuild=rebuild,
            progress=on_progress,
            sample_inputs=task.sample_inputs,
        )


__all__ = ["engine_group"]
