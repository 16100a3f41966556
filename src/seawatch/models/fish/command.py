"""Click commands of the fish task: ``train fish``, ``evaluate fish`` and ``gallery ...``.

The lead CLI registers them (``train.add_command(train_command)`` and so on). Importing this
module needs no torch: training imports it inside the command.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.head import FishIdentifier

DEFAULT_MODEL = Path("models/fish")
_console = Console()


@click.command("fish")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--epochs", default=None, type=int, help="default: the recipe's (see README)")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--individuals", default=None, type=int, help="synthetic individuals in all")
@click.option("--far", default=0.01, show_default=True, help="target false-match rate")
@click.option("--quick", is_flag=True, help="a seconds-long tiny run (smoke test)")
@click.option("--threads", default=1, show_default=True, help="torch CPU threads")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="fine-tune on your labelled fish: DIR/<individual>/<images> (see README)",
)
@click.option(
    "--pretrained",
    default="auto",
    show_default=True,
    help="with --data-dir: start from auto (the committed model), none, or a fish model "
    "directory / model.onnx",
)
@click.option(
    "--held-out",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.3,
    show_default=True,
    help="with --data-dir: share of the individuals held out (never trained on)",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="with --data-dir: optimiser steps (sets the epochs unless --epochs is given)",
)
@click.pass_context
def train_command(
    ctx: click.Context,
    out: Path,
    seed: int,
    epochs: int | None,
    device: str,
    individuals: int | None,
    far: float,
    quick: bool,
    threads: int,
    data_dir: Path | None,
    pretrained: str,
    held_out: float,
    steps: int,
) -> None:
    """Train the fish re-ID embedding on synthetic zebrafish (or fine-tune it on your folders
    with --data-dir); write model, card and gallery."""
    if not 0.0 < far < 1.0:
        raise click.BadParameter(f"must be between 0 and 1, got {far}", param_hint="--far")
    if data_dir is not None:
        if quick or individuals is not None:
            msg = "--quick and --individuals are for synthetic training, not with --data-dir"
            raise click.UsageError(msg)
        _finetune(
            ctx, data_dir, out, pretrained, held_out, steps, epochs, far, seed, device, threads
        )
        return
    try:
        from seawatch.models.fish.train import DEFAULTS, summary_line, train_fish
    except ImportError as exc:
        msg = f"training needs torch: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    args = [f"--out={out}", f"--seed={seed}", f"--device={device}", f"--far={far:g}"]
    args += [f"--epochs={epochs}"] if epochs is not None else []
    args += [f"--individuals={individuals}"] if individuals is not None else []
    args += ["--quick"] if quick else []
    args += [f"--threads={threads}"] if threads != 1 else []
    card = train_fish(
        out,
        seed=seed,
        device=device,
        epochs=DEFAULTS["epochs"] if epochs is None else epochs,
        n_individuals=DEFAULTS["n_individuals"] if individuals is None else individuals,
        far=far,
        quick=quick,
        threads=threads,
        command=f"{ctx.command_path} {shlex.join(args)}",
    )
    _console.print(summary_line(out, card))


def _finetune(
    ctx: click.Context,
    data_dir: Path,
    out: Path,
    pretrained: str,
    held_out: float,
    steps: int,
    epochs: int | None,
    far: float,
    seed: int,
    device: str,
    threads: int,
) -> None:
    """``train fish --data-dir``: fine-tune on the user's folders into ``out``."""
    if out.resolve() == DEFAULT_MODEL.resolve():
        msg = f"give --out for the fine-tuned model; {DEFAULT_MODEL} is the committed start"
        raise click.BadParameter(msg, param_hint="--out")
    try:
        from seawatch.models.fish.finetune import FinetuneConfig, finetune_fish, summary_line
    except ImportError as exc:
        msg = f"fine-tuning needs torch and onnx: pip install -e '.[train]' ({exc})"
        raise click.ClickException(msg) from exc
    from seawatch.contracts.errors import SeawatchError

    args = [f"--data-dir={data_dir}", f"--out={out}", f"--pretrained={pretrained}"]
    args += [f"--held-out={held_out:g}", f"--steps={steps}", f"--seed={seed}", f"--far={far:g}"]
    args += [f"--epochs={epochs}"] if epochs is not None else []
    config = FinetuneConfig(
        pretrained=pretrained, held_out=held_out, steps=steps, epochs=epochs, far=far
    )
    try:
        card = finetune_fish(
            data_dir,
            out,
            config=config,
            seed=seed,
            device=device,
            threads=threads,
            command=f"{ctx.command_path} {shlex.join(args)}",
        )
    except SeawatchError as exc:
        raise click.ClickException(str(exc)) from None
    _console.print(summary_line(out, card))


@click.command("fish")
@click.option("--model", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="default: the model directory"
)
@click.option("--seed", default=None, type=int, help="render seed (default: the card's)")
@click.option(
    "--recalibrate",
    is_flag=True,
    help="write the thresholds the calibration fish give beside the match threshold into "
    "the model's card.json: per gallery size (thresholds_by_gallery_size) and for "
    "query-expanded scores; weights, gallery and match_similarity unchanged",
)
def evaluate_command(model: Path, out: Path | None, seed: int | None, recalibrate: bool) -> None:
    """Evaluate a fish model (ONNX Runtime) on regenerated held-out synthetic fish."""
    from seawatch.models.fish.evaluate import evaluate_fish

    if recalibrate and seed is not None:
        raise click.BadParameter("calibrate with the card's own renders", param_hint="--seed")
    out = out or model  # beside the artifact, as plankton and otolith evaluations
    result = evaluate_fish(model, out, seed=seed)
    if recalibrate:
        _console.print(write_calibration(model, result["threshold"]))
    known, open_set, t = result["known"], result["open_set"], result["threshold"]
    _console.print(
        f"wrote {out}/evaluation.json: top1 all={known['all']['top1']} "
        f"seen={known['seen']['top1']} unseen={known['unseen']['top1']} "
        f"top5={known['all']['top5']} mAP={known['all']['mAP']} "
        f"auroc={open_set['new_vs_known_auroc']} fmr={t['test_false_match_rate']} "
        f"at match_similarity={t['match_similarity']}"
    )


def write_calibration(model: Path, threshold: dict) -> str:
    """Write an evaluation's per-size and query-expansion thresholds into the card."""
    from seawatch.models.fish.rerank import KEY

    card = load_card(model)
    table, expanded = threshold["by_gallery_size"], threshold["query_expansion"]
    tables = dict(card.thresholds_by_gallery_size or {})
    tables |= {"match_similarity": table, KEY: expanded["by_gallery_size"]}
    fields = card.model_dump(mode="json") | {"thresholds_by_gallery_size": tables}
    fields["thresholds"] = card.thresholds | {KEY: expanded["match_similarity"]}
    ModelCard.model_validate(fields).write(model)
    sizes = ", ".join(f"{n}: {t}" for n, t in table)
    return (
        f"wrote {model}/card.json: match_similarity by gallery size {sizes}; "
        f"{KEY} {expanded['match_similarity']}"
    )


@click.group("gallery")
def gallery_group() -> None:
    """List, enrol and remove known individuals in a fish model's gallery."""


_model_option = click.option(
    "--model", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True
)
_gallery_option = click.option(
    "--gallery",
    "gallery_path",
    type=click.Path(path_type=Path),
    default=None,
    help="default: the gallery file named in the model's card",
)


def _open(
    model: Path, gallery_path: Path | None, *, create: bool
) -> tuple[ModelCard, Path, Gallery]:
    card = load_card(model)
    if card.task != "fish":
        msg = f"{model} holds a {card.task!r} model; the gallery belongs to a fish model"
        raise ConfigError(msg)
    path = gallery_path or model / card.files.get("gallery", "gallery.npz")
    dim = card.metrics.get("embedding_dim")
    if create and not path.exists():
        return card, path, Gallery(dim)
    return card, path, Gallery.load(path, dim=dim)


@gallery_group.command("list")
@_model_option
@_gallery_option
def gallery_list(model: Path, gallery_path: Path | None) -> None:
    """Show the enrolled individuals."""
    _, path, gallery = _open(model, gallery_path, create=False)
    table = Table(title=f"{path}: {len(gallery)} individuals")
    for column in ("id", "views", "provisional", "enrolled at", "merged into"):
        table.add_column(column)
    for entry in gallery.list():
        table.add_row(
            entry.id,
            str(entry.n_embeddings),
            "yes" if entry.provisional else "",
            entry.enrolled_at,
            entry.merged_into or "",
        )
    _console.print(table)


@gallery_group.command("enrol")
@click.argument("individual")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--provisional", is_flag=True, help="mark the individual provisional")
@_model_option
@_gallery_option
def gallery_enrol(
    individual: str,
    images: tuple[Path, ...],
    provisional: bool,
    model: Path,
    gallery_path: Path | None,
) -> None:
    """Enrol INDIVIDUAL from one or more crop images (views are added to a known id)."""
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

    card, path, gallery = _open(model, gallery_path, create=True)
    crops = []
    for image_path in images:
        image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise click.BadParameter(f"cannot read an image from {image_path}", param_hint="IMAGES")
        crops.append(image)
    with OnnxRuntimeBackend(model / ONNX_FILE, threads=1) as backend:
        identifier = FishIdentifier(backend, card, gallery, max_batch=16)
        embeddings = identifier.embed(np.stack([identifier.model_input(c) for c in crops]))
    entry = gallery.enrol(individual, embeddings, provisional=provisional)
    gallery.save(path)
    _console.print(f"enrolled {entry.id}: {entry.n_embeddings} views in {path}")


@gallery_group.command("remove")
@click.argument("individual")
@_model_option
@_gallery_option
def gallery_remove(individual: str, model: Path, gallery_path: Path | None) -> None:
    """Remove INDIVIDUAL and all its views."""
    _, path, gallery = _open(model, gallery_path, create=False)
    gallery.remove(individual)
    gallery.save(path)
    _console.print(f"removed {individual} from {path} ({len(gallery)} left)")


@gallery_group.command("enrol-scenes")
@_model_option
@_gallery_option
@click.option("--out", type=click.Path(path_type=Path), required=True, help="the new gallery file")
@click.option("--views", default=2, show_default=True, help="detector-style views per fish")
@click.option("--scenes", default=None, type=int, help="tank frames per fish (default 3 x views)")
@click.option("--seed", default=7_180_000, show_default=True)
@click.option(
    "--min-own",
    type=float,
    default=None,
    help="keep a crop only if its best cosine to the fish's enrolled views reaches this",
)
def gallery_enrol_scenes(
    model: Path,
    gallery_path: Path | None,
    out: Path,
    views: int,
    scenes: int | None,
    seed: int,
    min_own: float | None,
) -> None:
    """Add detector-style views to every known fish: each drawn in tank scenes, cut by the
    daemon's whole-frame detector and orientation, good crops of that fish embedded
    (scene_enrol.py). Writes OUT; the source gallery is left as it is."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.scene_enrol import enrol_scene_views

    card, path, gallery = _open(model, gallery_path, create=False)
    if out.resolve() == path.resolve():
        raise click.BadParameter(f"writes a new gallery; {out} is the source", param_hint="--out")
    if views < 1 or (scenes is not None and scenes < 1):
        raise click.BadParameter("--views and --scenes must be at least 1")
    columns = (TextColumn("enrol scenes"), BarColumn(), MofNCompleteColumn())
    with (
        OnnxRuntimeBackend(model / ONNX_FILE, threads=1) as backend,
        Progress(*columns, console=_console) as bar,
    ):
        task = bar.add_task("fish", total=len(gallery))
        head = FishIdentifier(backend, card, gallery, max_batch=64, whole_frames=True)
        added = enrol_scene_views(
            head,
            views=views,
            seed=seed,
            scenes=scenes,
            min_own=min_own,
            progress=lambda _: bar.advance(task),
        )
    gallery.save(out)
    short = sum(n < views for n in added.values())
    _console.print(
        f"wrote {out}: {sum(added.values())} views added to {len(added)} individuals "
        f"(up to {views} each, {short} got fewer), seed {seed}, min_own {min_own}, from {path}"
    )


__all__ = ["evaluate_command", "gallery_group", "train_command"]
