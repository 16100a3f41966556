"""``seawatch train fish-segmentation``: the segmentation machinery's second use, fish bodies
in whole tank frames (issue 27's second use, issue 28's touching fish). Imports torch.

The same recipe as the plankton network (:mod:`seawatch.models.segmentation.selftrain`,
its rows that fit the time: ``Plan.rows == "served+third"``):
a teacher U-Net on the labelled third of a pool of tank scenes
(:func:`~seawatch.models.fish.tank_scene.render_scene`, whose masks are each fish's pasted
alpha), the quality network on its cross-fold instances, quality-filtered pseudo-labels on
the rest of the pool and on never-labelled scenes, and the distilled student, which is
served. Inputs are :func:`~seawatch.models.fish.frame_segment.segment_input` (the classical
detector's background difference at half size); targets are foreground and centre-ness of
the true masks at that scale.

Every row is scored on validation scenes as a detector: boxes (IoU >= 0.5, one to one)
against the drawn fish, recall, precision, and how many pairs of fish whose boxes overlap
are both found (the classical detector's blind spot), beside the classical detector's.

Seeds (development draws): pool 7,100,700, unlabelled 7,100,701, validation 7,100,702.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from seawatch.models.fish.detection_score import DetectionScore
from seawatch.models.fish.frame_detect import detect_fish
from seawatch.models.fish.frame_segment import (
    CORE_LEVEL,
    MERGE_LEVEL,
    SCALE,
    STRIDE,
    TASK,
    detections_from_maps,
    segment_input,
)
from seawatch.models.fish.synthetic import make_individuals
from seawatch.models.fish.tank_scene import Scene, render_scene
from seawatch.models.segmentation.data import Tiles
from seawatch.models.segmentation.fit import FitSettings
from seawatch.models.segmentation.selftrain import SERVED_ROW, Plan, run

POOL_SEED, UNLABELLED_SEED, VALIDATION_SEED = 7_100_700, 7_100_701, 7_100_702
INDIVIDUALS_SEED = 3  # the fish generator's seed for the scenes' fish (not the gallery's 0)
NAME, VERSION = "fish-seg-unet", "0.1.0"

PLAN = Plan(
    pool=24,
    labelled=8,
    unlabelled_extra=40,
    fit=FitSettings(steps=250, batch=8, crop=128),
    student_steps=250,
    quality_steps=250,
    pool_seed=POOL_SEED,
    unlabelled_seed=UNLABELLED_SEED,
    rows="served+third",  # teacher, supervised 1/3, quality network, distilled student
)
QUICK = Plan(
    pool=6,
    labelled=3,
    unlabelled_extra=2,
    fit=FitSettings(steps=3, batch=2, crop=64),
    student_steps=2,
    quality_steps=3,
    pool_seed=POOL_SEED,
    unlabelled_seed=UNLABELLED_SEED,
    rows="served+third",  # teacher, supervised 1/3, quality network, distilled student
)


def scene_labels(scene: Scene) -> np.ndarray:
    """A scene's masks at the network's scale, padded as its input is (int32)."""
    h, w = scene.labels.shape
    small = cv2.resize(scene.labels, (w // SCALE, h // SCALE), interpolation=cv2.INTER_NEAREST)
    ph, pw = -small.shape[0] % STRIDE, -small.shape[1] % STRIDE
    return np.pad(small, ((0, ph), (0, pw))).astype(np.int32)


def render_scenes(n: int, seed: int, *, overlap_share: float = 0.25, progress=None) -> list[Scene]:
    """``n`` tank scenes from ``seed`` (fish of generator :data:`INDIVIDUALS_SEED`)."""
    rng = np.random.default_rng(seed)
    pool = make_individuals(40, INDIVIDUALS_SEED)
    out = []
    for _ in range(n):
        out.append(render_scene(pool, rng, overlap_share=overlap_share))
        if progress is not None:
            progress(1)
    return out


def scene_tiles(scenes: list[Scene]) -> Tiles:
    """The scenes as training tiles: network inputs and masks at the network's scale."""
    return Tiles(
        np.stack([segment_input(s.image) for s in scenes]),
        np.stack([scene_labels(s) for s in scenes]),
    )


def score_detectors(nets: dict, scenes: list[Scene]) -> dict[str, dict]:
    """The classical detector's and every network's detection figures on ``scenes``."""
    from seawatch.models.segmentation.fit import predict_maps

    out = {}
    classical = DetectionScore()
    for scene in scenes:
        classical.add(scene, [d.box for d in detect_fish(scene.image)])
    out["threshold"] = classical.summary()
    inputs = np.stack([segment_input(s.image) for s in scenes])
    for name, net in nets.items():
        maps = predict_maps(net, inputs)
        score = DetectionScore()
        for scene, m in zip(scenes, maps, strict=True):
            score.add(scene, [d.box for d in detections_from_maps(scene.image, m)])
        out[name] = score.summary()
    return out


def train_fish_segmentation(
    out: Path, plan: Plan, *, command: str, validation: int
) -> dict[str, dict]:
    """Run the plan on tank scenes, score every row on validation scenes, write the artifact
    (the distilled student, the quality network, the card) to ``out``; the scores."""
    from seawatch.models.segmentation.export import export_graphs, round_floats, write_card
    from seawatch.models.segmentation.train import stage_bars
    from seawatch.models.training import training_progress

    started = time.perf_counter()
    with training_progress() as progress:
        total = plan.pool + plan.unlabelled_extra + validation
        task = progress.add_task("render scenes", total=total, info="")
        step = lambda n: progress.advance(task, n)  # noqa: E731
        pool = scene_tiles(
            render_scenes(plan.pool, plan.pool_seed, overlap_share=0.5, progress=step)
        )
        extra = scene_tiles(
            render_scenes(
                plan.unlabelled_extra, plan.unlabelled_seed, overlap_share=0.5, progress=step
            )
        )
        val = render_scenes(validation, VALIDATION_SEED, progress=step)
        result = run(plan, pool, extra, stage_bars(progress))
        task = progress.add_task("score validation", total=None, info="")
        scores = score_detectors({"teacher": result.teacher, **result.nets}, val)
        progress.update(task, total=1, completed=1)
    parity = export_graphs(result.nets[SERVED_ROW], result.quality, out)
    metrics = round_floats(
        {
            "split": f"validation scenes, seed {VALIDATION_SEED} (development figures)",
            "rows": scores,
            "parity": parity,
            "fit_seconds": result.seconds,
            "pseudo_labels": result.counts,
        }
    )
    data = {
        "source": "synthetic tank scenes (seawatch.models.fish.tank_scene), masks from the "
        "pasted alpha; training scenes with overlap_share 0.5",
        "frame_px": [640, 480],
        "network_px": [320, 240],
        "pool": {"seed": plan.pool_seed, "scenes": plan.pool, "labelled": plan.labelled},
        "unlabelled_extra": {"seed": plan.unlabelled_seed, "scenes": plan.unlabelled_extra},
        "validation": {"seed": VALIDATION_SEED, "scenes": validation},
        "plan": round_floats(plan.summary()),
    }
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
        thresholds={"quality_threshold": plan.quality_threshold, "stride": float(STRIDE)},
    )
    fish_card = card.model_copy(
        update={
            "task": TASK,
            "thresholds": {**card.thresholds, "core": CORE_LEVEL, "merge": MERGE_LEVEL},
            "name": NAME,
            "version": VERSION,
            "input": card.input.model_copy(
                update={"preprocessing": "seawatch.models.fish.frame_segment.segment_input"}
            ),
        }
    )
    fish_card.write(out)
    return scores


def with_steps(plan: Plan, steps: int | None, seed: int) -> Plan:
    """``plan`` with every U-Net fit at ``steps`` (when given) and ``seed``."""
    if steps is not None:
        plan = replace(
            plan,
            fit=replace(plan.fit, steps=steps),
            student_steps=steps,
            quality_steps=steps,
        )
    return replace(plan, seed=seed)


__all__ = [
    "PLAN",
    "QUICK",
    "render_scenes",
    "scene_labels",
    "scene_tiles",
    "score_detectors",
    "train_fish_segmentation",
    "with_steps",
]
