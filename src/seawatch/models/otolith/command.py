"""Click commands for the otolith model: train, pretrain its teacher, serving views, evaluate.

Importing this module needs neither torch nor ONNX Runtime: training imports torch inside
the command, so the daemon's CLI loads without the ``train`` extra.
"""

from __future__ import annotations

from pathlib import Path

import click

_FAR = click.option(
    "--far",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="target false-alarm rate: the share of normal specimens the threshold may flag",
)


_model_dir_option = click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=Path("models/otolith"),
    show_default=True,
    help="the otolith artifact directory",
)


@click.command("otolith-calibrate")
@click.option(
    "--model",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=Path("models/otolith"),
    show_default=True,
)
@click.option(
    "--normal-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="Your normal otolith photographs (any tree).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The new artifact.")
@_FAR
@click.option("--version", default=None, help="The new card's version (default: +.calYYYYMMDD).")
@click.pass_context
def calibrate_command(
    ctx: click.Context, model: Path, normal_dir: Path, out: Path, far: float, version: str | None
) -> None:
    """Set the anomaly threshold on your own normal specimens (ONNX Runtime, no torch)."""
    from seawatch.contracts.errors import SeawatchError
    from seawatch.models.otolith.calibrate import recalibrate

    command = f"{ctx.command_path} --model {model} --normal-dir {normal_dir} --out {out}"
    try:
        card = recalibrate(model, normal_dir, out, far=far, version=version, command=command)
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    done = card.metrics["user_calibration"]
    click.echo(
        f"wrote {out} ({card.release}): threshold {done['threshold_before']} -> "
        f"{done['threshold_after']} on {done['normal_specimens']} normal specimens; the old "
        f"threshold flagged {done['false_alarm_rate_before']:.1%} of them"
    )


@click.command("otolith")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("models/otolith"), show_default=True
)
@click.option("--seed", default=0, show_default=True, help="seed of the training data and run")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="student epochs")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option(
    "--teacher-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="pretrained teacher instead of pretraining one here: teacher.pt of `seawatch train "
    "otolith-teacher` (its teacher.json is checked and recorded) or of an artifact",
)
@_FAR
@click.option("--quick", is_flag=True, help="a seconds-long tiny run (smoke test)")
@click.option(
    "--normal-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="re-distil --model's student on your normal otoliths (any tree) instead",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("models/otolith"),
    show_default=True,
    help="with --normal-dir: the detector to start from",
)
@click.option(
    "--held-out",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.3,
    show_default=True,
    help="with --normal-dir: share of the normals held out for the map and the threshold",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="with --normal-dir: optimiser steps (sets the epochs unless --epochs is given)",
)
@click.option(
    "--views",
    type=click.Choice(["1", "2", "4", "8"]),
    default=None,
    help="with --normal-dir: test-time views of the new graph (default: the start's)",
)
@click.option("--version", default=None, help="with --normal-dir: the new card's version")
@click.pass_context
def train_command(
    ctx: click.Context,
    out: Path,
    seed: int,
    epochs: int | None,
    device: str,
    teacher_weights: Path | None,
    far: float,
    quick: bool,
    normal_dir: Path | None,
    model_dir: Path,
    held_out: float,
    steps: int,
    views: str | None,
    version: str | None,
) -> None:
    """Train the otolith anomaly detector (asymmetric MKD) on the synthetic generator, or,
    with --normal-dir, re-distil a trained one's student on your normal specimens."""
    if normal_dir is not None:
        if quick or teacher_weights is not None:
            msg = "--quick and --teacher-weights are for synthetic training, not --normal-dir"
            raise click.UsageError(msg)
        words = [ctx.command_path, "--normal-dir", str(normal_dir), "--model", str(model_dir)]
        words += ["--out", str(out), "--seed", str(seed), "--far", f"{far:g}"]
        words += ["--held-out", f"{held_out:g}", "--steps", str(steps)]
        words += ["--epochs", str(epochs)] if epochs is not None else []
        words += ["--views", views] if views is not None else []
        _redistil(normal_dir, model_dir, out, seed, device, version, " ".join(words),
                  held_out=held_out, steps=steps, epochs=epochs, far=far,
                  views=None if views is None else int(views))  # fmt: skip
        return
    try:
        from seawatch.models.otolith.card_build import summary_line
        from seawatch.models.otolith.train import train_otolith
    except ImportError as exc:
        msg = f"training needs torch and onnx: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    words = [ctx.command_path, "--out", str(out), "--seed", str(seed), "--device", device]
    words += ["--far", f"{far:g}"]
    words += ["--epochs", str(epochs)] if epochs is not None else []
    words += ["--teacher-weights", str(teacher_weights)] if teacher_weights else []
    words += ["--quick"] if quick else []
    card = train_otolith(
        out,
        seed=seed,
        device=device,
        epochs=epochs,
        teacher_weights=teacher_weights,
        far=far,
        quick=quick,
        command=" ".join(words),
    )
    click.echo(summary_line(out, card))


def _redistil(
    normal_dir: Path,
    model_dir: Path,
    out: Path,
    seed: int,
    device: str,
    version: str | None,
    command: str,
    **config: object,
) -> None:
    """``train otolith --normal-dir``: re-distil the student of ``model_dir`` into ``out``."""
    try:
        from seawatch.models.otolith.redistil import RedistilConfig, redistil, summary_line
    except ImportError as exc:
        msg = f"re-distillation needs torch and onnx: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    from seawatch.contracts.errors import SeawatchError

    try:
        card = redistil(
            model_dir,
            normal_dir,
            out,
            config=RedistilConfig(**config),  # type: ignore[arg-type]
            seed=seed,
            device=device,
            version=version,
            command=command,
        )
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary_line(out, card))


@click.command("otolith-teacher")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("models/otolith-teacher"),
    show_default=True,
)
@click.option("--seed", default=0, show_default=True, help="seed of the training data and run")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="plain epochs (default 24)"
)
@click.option(
    "--hard-epochs",
    type=click.IntRange(min=0),
    default=None,
    help="hard-negative epochs after them (default 72)",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--quick", is_flag=True, help="a seconds-long tiny run (smoke test)")
@click.pass_context
def train_teacher_command(
    ctx: click.Context,
    out: Path,
    seed: int,
    epochs: int | None,
    hard_epochs: int | None,
    device: str,
    quick: bool,
) -> None:
    """Pretrain the otolith teacher once, long (about an hour on 2 CPU cores); write its card.

    `seawatch train otolith --teacher-weights OUT/teacher.pt` then distils students from it.
    """
    try:
        from seawatch.models.otolith.teacher_artifact import train_teacher_artifact
    except ImportError as exc:
        msg = f"training needs torch: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    words = [ctx.command_path, "--out", str(out), "--seed", str(seed), "--device", device]
    words += ["--epochs", str(epochs)] if epochs is not None else []
    words += ["--hard-epochs", str(hard_epochs)] if hard_epochs is not None else []
    words += ["--quick"] if quick else []
    card = train_teacher_artifact(
        out,
        seed=seed,
        device=device,
        epochs=epochs,
        hard_epochs=hard_epochs,
        quick=quick,
        command=" ".join(words),
    )
    last = card.history[-1]["loss"] if card.history else "n/a"
    click.echo(
        f"wrote {out}: teacher epochs={card.epochs} hard_epochs={card.hard_epochs} "
        f"last_loss={last} seconds={card.seconds} sha256={card.weights_sha256[:12]}"
    )


@click.command("otolith")
@_model_dir_option
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="default: the model directory"
)
@click.option("--seed", type=int, default=None, help="test-set seed (default: the card's)")
@click.option("--n", type=click.IntRange(min=4), default=None, help="normal test images")
def evaluate_command(model_dir: Path, out: Path | None, seed: int | None, n: int | None) -> None:
    """Score an otolith artifact on its held-out synthetic test set (ONNX Runtime, no torch)."""
    from seawatch.models.otolith.evaluate import EVALUATION_FILE, evaluate_otolith

    out = out or model_dir
    m = evaluate_otolith(model_dir, out, seed=seed, n=n)
    detection = " ".join(f"{t}={r}" for t, r in m["detection_rate_per_type"].items())
    click.echo(
        f"wrote {out / EVALUATION_FILE}: n={m['n']} auroc={m['auroc']} "
        f"threshold={m['threshold']:.4g} false_alarm_rate={m['false_alarm_rate']} "
        f"detection: {detection}"
    )


@click.command("otolith-views")
@_model_dir_option
@click.option(
    "--min-seconds",
    type=click.FloatRange(min=0.0),
    default=3.0,
    show_default=True,
    help="shortest timing run per view count and thread count",
)
@click.option(
    "--timing-only",
    is_flag=True,
    help="only time the existing variants again and update specimens/s (about 1 min)",
)
@click.pass_context
def views_command(
    ctx: click.Context, model_dir: Path, min_seconds: float, timing_only: bool
) -> None:
    """Serve the detector with 1, 4 or 8 test-time views: re-export its graph (same weights,
    checked against the committed graph) with each, calibrate a threshold for each, measure
    AUROC and specimens/s, and record them with the recommended views in the card (about
    7 min on 2 CPU cores). tasks.otolith.options.views then picks one (auto: the card's)."""
    try:
        from seawatch.models.otolith.views_build import build_serving_views, retime_serving_views
    except ImportError as exc:
        msg = f"re-exporting needs torch and onnx: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    from seawatch.contracts.errors import SeawatchError

    command = f"{ctx.command_path} --model {model_dir}" + (" --timing-only" if timing_only else "")
    build = retime_serving_views if timing_only else build_serving_views
    try:
        table = build(model_dir, command=command, min_s=min_seconds)
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(views_summary(model_dir, table))


def views_summary(model_dir: Path, table: dict) -> str:
    """The per-views table as printed lines."""
    threads = [str(t) for t in table["throughput"]["threads"]]
    head = "views  auroc   threshold  far    detect  select  " + "  ".join(
        f"spec/s@{t}thr" for t in threads
    )
    lines = [f"wrote {model_dir}/card.json metrics.serving_views and its views<n>/ variants", head]
    for views, c in table["choices"].items():
        speeds = "  ".join(f"{c['specimens_per_s'][t]:>11}" for t in threads)
        lines.append(
            f"{views:>5}  {c['auroc']:.4f}  {c['threshold']:>9.4f}  {c['false_alarm_rate']:.3f}"
            f"  {c['detection_rate']:.3f}   {c['selection_auroc']:.4f}  {speeds}   {c['release']}"
        )
    rec = table["recommended"]
    lines.append(f"recommended: cpu {rec['cpu']} views, gpu {rec['gpu']} ({table['rule']})")
    return "\n".join(lines)


__all__ = [
    "calibrate_command",
    "evaluate_command",
    "train_command",
    "train_teacher_command",
    "views_command",
    "views_summary",
]


if __name__ == "__main__":  # until `seawatch train otolith-views` is registered in cli.py
    views_command(prog_name="seawatch train otolith-views")
