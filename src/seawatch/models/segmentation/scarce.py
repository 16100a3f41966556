"""The ablation as an experiment: fit every row of a :class:`~.selftrain.Plan`, keep the
fitted networks on disk, and score them later on held-out tiles (issue 27, scarce labels).

Fitting and scoring are apart so the networks chosen on development tiles are scored on a
reserved draw once, without fitting again: :func:`fit_rows` -> :func:`save_rows` (state
dicts and the plan), :func:`load_rows` -> :func:`score_rows`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seawatch.models.segmentation.data import Tiles, make_tiles
from seawatch.models.segmentation.evaluate import (
    FrameScores,
    model_labels,
    score_frame,
    score_model,
    score_threshold,
)
from seawatch.models.segmentation.fit import FitSettings, predict_maps
from seawatch.models.segmentation.metrics import spearman
from seawatch.models.segmentation.network import QualityNet, SegNet
from seawatch.models.segmentation.selftrain import (
    SERVED_ROW,
    Plan,
    Progress,
    fit_students,
    pseudo_label,
    run,
    split_pool,
    timed_fit,
)

PLAN_FILE = "plan.json"
STUDENTS = ("self_training", "self_training_quality", SERVED_ROW)
# what the teacher, the quality network and the supervised rows depend on: a refit of the
# students must keep these as they were
TEACHER_FIELDS = ("pool", "labelled", "fit", "student_steps", "student_lr", "quality_steps")
TEACHER_FIELDS += ("folds", "seed", "pool_seed")
TEACHER = "teacher"
QUALITY = "quality"


@dataclass
class FittedRows:
    """The networks of one run: every row's, the teacher's and the quality network."""

    nets: dict[str, SegNet]
    teacher: SegNet
    quality: QualityNet
    plan: dict
    seconds: dict[str, float]
    counts: dict[str, int]


def fit_rows(plan: Plan, progress: Progress | None = None) -> FittedRows:
    """Render the plan's pool and never-labelled tiles (their seeds are the plan's) and fit
    its rows (:func:`~.selftrain.run`)."""
    pool = make_tiles(plan.pool, plan.pool_seed)
    extra = (
        make_tiles(plan.unlabelled_extra, plan.unlabelled_seed) if plan.unlabelled_extra else None
    )
    result = run(plan, pool, extra, progress)
    return FittedRows(
        result.nets, result.teacher, result.quality, plan.summary(), result.seconds, result.counts
    )


def save_rows(rows: FittedRows, folder: Path) -> None:
    """Every network's state dict (``<row>.pt``, ``teacher.pt``, ``quality.pt``) and the plan
    with the fit's seconds and counts (``plan.json``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in {**rows.nets, TEACHER: rows.teacher, QUALITY: rows.quality}.items():
        torch.save(net.state_dict(), folder / f"{name}.pt")
    record = {
        "plan": rows.plan,
        "rows": list(rows.nets),
        "segnet": rows.teacher.options,
        "seconds": rows.seconds,
        "counts": rows.counts,
    }
    (folder / PLAN_FILE).write_text(json.dumps(record, indent=1) + "\n")


def load_rows(folder: Path) -> FittedRows:
    """The networks :func:`save_rows` wrote (a clear error where the folder lacks any)."""
    path = folder / PLAN_FILE
    if not path.is_file():
        msg = f"no fitted rows in {folder} (missing {PLAN_FILE}); fit them first"
        raise FileNotFoundError(msg)
    record = json.loads(path.read_text())

    def segnet(name: str) -> SegNet:
        file = folder / f"{name}.pt"
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing: the fitted rows are incomplete")
        net = SegNet(
            tuple(record["segnet"]["widths"]),
            **{k: record["segnet"][k] for k in ("fine", "downsample")},
        )
        net.load_state_dict(torch.load(file, weights_only=True))
        return net.eval()

    quality = QualityNet()
    quality.load_state_dict(torch.load(folder / f"{QUALITY}.pt", weights_only=True))
    nets = {name: segnet(name) for name in record["rows"]}
    return FittedRows(
        nets, segnet(TEACHER), quality.eval(), record["plan"], record["seconds"], record["counts"]
    )


def plan_from_dict(data: dict) -> Plan:
    """A :class:`Plan` from :meth:`Plan.summary` (its ``fit`` back to :class:`FitSettings`)."""
    fit = dict(data["fit"])
    fit["widths"] = tuple(fit["widths"])
    return Plan(**{**data, "fit": FitSettings(**fit)})


def refit_students(folder: Path, plan: Plan, progress: Progress | None = None) -> FittedRows:
    """The students of ``plan`` fitted from the teacher and quality network kept in
    ``folder``, beside its supervised rows (kept as they are): a change to the students'
    side of a plan without fitting the rest again. ``plan`` must match the kept one in
    everything the teacher and the supervised rows depend on (:data:`TEACHER_FIELDS`)."""
    kept = load_rows(folder)
    before = plan_from_dict(kept.plan)
    changed = [f for f in TEACHER_FIELDS if getattr(before, f) != getattr(plan, f)]
    if changed:
        msg = f"the plan changes what the kept teacher depends on: {', '.join(changed)}"
        raise ValueError(msg)
    pool = make_tiles(plan.pool, plan.pool_seed)
    extra = (
        make_tiles(plan.unlabelled_extra, plan.unlabelled_seed) if plan.unlabelled_extra else None
    )
    labelled, unlabelled = split_pool(plan, pool, extra)
    say = progress or (lambda stage, done, total: None)
    seconds = {k: v for k, v in kept.seconds.items() if k not in STUDENTS}

    fit = timed_fit(say, seconds)
    _, students = fit_students(plan, labelled, unlabelled, kept.teacher, kept.quality, fit)
    nets = {k: v for k, v in kept.nets.items() if k not in STUDENTS} | students.nets
    counts = {k: v for k, v in kept.counts.items() if not k.startswith(STUDENTS)}
    return FittedRows(
        nets, kept.teacher, kept.quality, plan.summary(), seconds, counts | students.counts
    )


def score_rows(rows: FittedRows, tiles: Tiles) -> dict[str, dict]:
    """Every row's and the threshold's scores on ``tiles`` (rendered with ``keep_full``),
    at the daemon's resolution."""
    scores = {
        "threshold": score_threshold(tiles.images, tiles.full_labels, tiles.touching).summary()
    }
    for name, net in {TEACHER: rows.teacher, **rows.nets}.items():
        maps = predict_maps(net, tiles.inputs)
        scores[name] = score_model(maps, tiles.images, tiles.full_labels, tiles.touching).summary()
    return scores


def tile_sums(rows: FittedRows, tiles: Tiles) -> dict[str, np.ndarray]:
    """Per row, each tile's sum of best IoUs over its counted true objects and their number
    (N x 2): the parts of :func:`score_rows`' mIoU, for resampling tiles."""
    out = {}
    for name, net in {TEACHER: rows.teacher, **rows.nets}.items():
        maps = predict_maps(net, tiles.inputs)
        parts = []
        for m, image, truth, touch in zip(
            maps, tiles.images, tiles.full_labels, tiles.touching, strict=True
        ):
            scores = FrameScores([], [], 0, [], [])
            score_frame(model_labels(m, image.shape), truth, touch, scores)
            parts.append((sum(scores.best_iou), len(scores.best_iou)))
        out[name] = np.array(parts, np.float64)
    return out


def paired_interval(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """The mIoU difference a - b in points, with the 5th and 95th percentiles over tiles
    resampled with replacement (the same tiles for both: a paired bootstrap). ``a``, ``b``:
    :func:`tile_sums` rows of the same tiles."""
    if a.shape != b.shape or not np.array_equal(a[:, 1], b[:, 1]):
        raise ValueError("a and b must be tile sums of the same tiles")
    pick = np.random.default_rng(seed).integers(0, len(a), (resamples, len(a)))
    objects = a[pick, 1].sum(1)
    diffs = 100 * (a[pick, 0].sum(1) - b[pick, 0].sum(1)) / np.maximum(objects, 1)
    point = 100 * (a[:, 0].sum() - b[:, 0].sum()) / max(a[:, 1].sum(), 1)
    low, high = np.percentile(diffs, [5, 95])
    return {
        "points": round(float(point), 2),
        "p5": round(float(low), 2),
        "p95": round(float(high), 2),
    }


def quality_rho(rows: FittedRows, tiles: Tiles) -> dict[str, float | int]:
    """Spearman rho of the quality network's predicted IoU against the true IoU of the
    teacher's instances on ``tiles``."""
    pseudo = pseudo_label(rows.teacher, rows.quality, tiles)
    predicted, true = np.concatenate(pseudo.predicted), np.concatenate(pseudo.true)
    return {"spearman_teacher": round(spearman(predicted, true), 4), "instances": len(true)}


def gains(scores: dict[str, dict], student: str = "self_training_quality_kd") -> dict:
    """The issue's two mIoU criteria, in points: the student against supervised on a third
    of the masks (at least +3) and against supervised on all (at most 1 below)."""
    kd = scores[student]["miou"]
    third, every = scores["supervised_third"]["miou"], scores["supervised_all"]["miou"]
    return {
        "student_minus_supervised_third_points": round(100 * (kd - third), 2),
        "supervised_all_minus_student_points": round(100 * (every - kd), 2),
        "at_least_3_points_over_third": bool(kd >= third + 0.03),
        "within_1_point_of_all": bool(kd >= every - 0.01),
    }


__all__ = [
    "FittedRows",
    "fit_rows",
    "gains",
    "load_rows",
    "paired_interval",
    "plan_from_dict",
    "quality_rho",
    "refit_students",
    "save_rows",
    "score_rows",
    "tile_sums",
]
