"""``seawatch train segmentation``: the seed-001 ablation on development draws, and the
artifact (the distilled student and the quality network) with every row's graph beside it.

Seeds: the pool 7,100,200, the validation tiles 7,100,201 (the card's figures; development
numbers). The final numbers come from ``benchmarks/segmentation.py --final`` on the reserved
draw 7,900,070, which nothing here touches.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from seawatch.contracts.card import ModelCard
from seawatch.models.onnx_export import export_onnx
from seawatch.models.segmentation.data import STRIDE, Tiles, make_tiles
from seawatch.models.segmentation.evaluate import score_model, score_threshold
from seawatch.models.segmentation.export import export_graphs, round_floats, write_card
from seawatch.models.segmentation.fit import predict_maps
from seawatch.models.segmentation.metrics import spearman
from seawatch.models.segmentation.plots import draw_ablation
from seawatch.models.segmentation.selftrain import (
    ROWS,
    SERVED_ROW,
    Plan,
    Progress,
    Result,
    pseudo_label,
    run,
)
from seawatch.models.training import training_progress

VALIDATION_SEED, VALIDATION_TILES = 7_100_201, 16
ABLATION_DIR = "ablation"  # every row's graph, for the benchmark's held-out scoring
PLOT_FILE = "ablation.png"
SHORT = {
    "teacher": "teacher (1/3)",
    "supervised_all_stage1": "supervised all (1)",
    "supervised_third": "supervised 1/3",
    "supervised_all": "supervised all",
    "self_training": "self-training",
    "self_training_quality": "self + quality",
    "self_training_quality_kd": "self + quality + KD",
}


def stage_bars(progress) -> Progress:
    """A :data:`Progress` callback that gives each fit of a run its own bar on ``progress``
    (a :func:`training_progress`), labelled with the row's short name."""
    stages: dict[str, object] = {}

    def show(stage: str, done: int, total: int) -> None:
        name = stage.split(" ")[0]
        if name not in stages:
            label = SHORT.get(name, name)
            stages[name] = progress.add_task(f"fit {label}"[:22], total=total, info="")
        progress.update(stages[name], completed=done, info=stage.split(" ", 1)[-1])

    return show


def score_rows(result: Result, tiles: Tiles) -> dict[str, dict]:
    """Every row's scores on ``tiles`` (with full-resolution frames), and the threshold's."""
    scores = {
        "threshold": score_threshold(tiles.images, tiles.full_labels, tiles.touching).summary()
    }
    for name, net in result.nets.items():
        maps = predict_maps(net, tiles.inputs)
        scores[name] = score_model(maps, tiles.images, tiles.full_labels, tiles.touching).summary()
    return scores


def quality_rho(result: Result, tiles: Tiles) -> dict[str, float | int]:
    """Spearman rho of predicted vs true IoU on ``tiles``: of the teacher's pseudo-masks
    (what the filter sees) and of the served student's masks (what the daemon stores)."""
    out: dict[str, float | int] = {}
    for key, net in (("teacher", result.teacher), ("student", result.nets[SERVED_ROW])):
        pseudo = pseudo_label(net, result.quality, tiles)
        predicted, true = np.concatenate(pseudo.predicted), np.concatenate(pseudo.true)
        out[f"spearman_{key}"] = round(spearman(predicted, true), 4)
        out[f"instances_{key}"] = len(true)
    pool = result.teacher_pseudo
    out["spearman_teacher_unlabelled_pool"] = round(
        spearman(np.concatenate(pool.predicted), np.concatenate(pool.true)), 4
    )
    return out


def export_rows(result: Result, out: Path) -> None:
    """Each row's network (and the teacher) as ONNX under ``out/ablation``."""
    for name, net in {**result.nets, "teacher": result.teacher}.items():
        export_onnx(
            net,
            out / ABLATION_DIR / f"{name}.onnx",
            torch.zeros(1, 1, 2 * net.stride, 2 * net.stride),
            input_names=("image",),
            output_names=("maps",),
            spatial=True,
        )


def train_segmentation(out: Path, plan: Plan, *, command: str, validation: int) -> ModelCard:
    """Run the plan, score the rows on the validation tiles, write the artifact to ``out``."""
    started = time.perf_counter()
    with training_progress() as progress:
        total = plan.pool + plan.unlabelled_extra + validation
        task = progress.add_task("render tiles", total=total, info="")
        pool = make_tiles(plan.pool, plan.pool_seed, progress=lambda n: progress.advance(task, n))
        extra = make_tiles(
            plan.unlabelled_extra,
            plan.unlabelled_seed,
            progress=lambda n: progress.advance(task, n),
        )
        val = make_tiles(
            validation,
            VALIDATION_SEED,
            keep_full=True,
            progress=lambda n: progress.advance(task, n),
        )
        result = run(plan, pool, extra, stage_bars(progress))
        task = progress.add_task("score validation", total=None, info="")
        scores = score_rows(result, val)
        rho = quality_rho(result, val)
        progress.update(task, total=1, completed=1)
    out.mkdir(parents=True, exist_ok=True)
    parity = export_graphs(result.nets[SERVED_ROW], result.quality, out)
    export_rows(result, out)
    draw_ablation(
        [(label, scores[key]["miou"]) for key, label in ROWS if key in scores],
        scores["threshold"]["miou"],
        f"Segmentation ablation, validation tiles (seed {VALIDATION_SEED}, development)",
        out / PLOT_FILE,
    )
    metrics = round_floats(
        {
            "split": f"validation tiles, seed {VALIDATION_SEED} (development figures; the final "
            "ones: benchmarks/segmentation.py --final, seed 7,900,070)",
            "rows": scores,
            "quality": rho,
            "parity": parity,
            "fit_seconds": result.seconds,
            "pseudo_labels": result.counts,
        }
    )
    data = {
        "source": "synthetic hard full frames (seawatch.models.segmentation.synthetic)",
        "tile_px": 512,
        "network_px": 256,
        "segnet": result.nets[SERVED_ROW].options,
        "pool": {"seed": plan.pool_seed, "tiles": plan.pool, "labelled": plan.labelled},
        "unlabelled_extra": {"seed": plan.unlabelled_seed, "tiles": plan.unlabelled_extra},
        "validation": {"seed": VALIDATION_SEED, "tiles": validation},
        "plan": round_floats(plan.summary()),
    }
    files = {"ablation_plot": PLOT_FILE, "ablation_graphs": ABLATION_DIR}
    card = write_card(
        out,
        result.nets[SERVED_ROW],
        result.quality,
        command=command,
        seed=plan.seed,
        steps=plan.fit.steps,
        seconds=time.perf_counter() - started,
        data=data,
        metrics=metrics,
        thresholds={
            "quality_threshold": plan.quality_threshold,
            "stride": float(max(STRIDE, result.nets[SERVED_ROW].stride)),
        },
        extra_files=files,
    )
    return card


__all__ = [
    "ABLATION_DIR",
    "SERVED_ROW",
    "VALIDATION_SEED",
    "quality_rho",
    "score_rows",
    "stage_bars",
    "train_segmentation",
]
