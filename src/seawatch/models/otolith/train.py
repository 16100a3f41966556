"""Train the otolith anomaly detector (asymmetric MKD) on synthetic data; write the artifact.

``seawatch train otolith --out models/otolith`` renders normal training
otoliths, a normal calibration set, a small validation set and a held-out test set (normal +
every defect), each from its own seed; pretrains the colour teacher (or loads
``--teacher-weights``); distils the grayscale student on normal otoliths; sets the map's
stage norms and the image score on validation; exports ``model.onnx`` (checked against ONNX
Runtime on random and real inputs); calibrates the threshold on the calibration normals for
the target false-alarm rate through the daemon's own head; scores the test set; and trains the
same-input ablation (student on the colour image) for comparison. Writes ``card.json``,
``teacher.pt``, ``evaluation.json``, ``roc.png`` and ``heatmaps.png``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seawatch.contracts.card import ONNX_FILE, ModelCard
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.otolith import distil as D
from seawatch.models.otolith.card_build import (
    NAME,
    VERSION,
    detector_card,
    training_summary,
)
from seawatch.models.otolith.evaluate import (
    EVALUATION_FILE,
    auroc,
    calibrate_threshold,
    detection_metrics,
    score_images,
    write_figures,
)
from seawatch.models.otolith.export import export_otolith, export_parity
from seawatch.models.otolith.head import THRESHOLD_KEY, OtolithDetector
from seawatch.models.otolith.network import (
    OtolithMKD,
    Student,
    check_views,
)
from seawatch.models.otolith.plan import (
    OFFSETS,
    QUICK,
    Plan,
    channel_stats,
    prepared,
    render_training_set,
)
from seawatch.models.otolith.synthetic import ANOMALY_TYPES, NORMAL, make_dataset
from seawatch.models.otolith.teacher import TASK as TEACHER_TASK
from seawatch.models.otolith.teacher import TEACHER_FILE, load_teacher, pretrain_for_plan
from seawatch.models.otolith.teacher_artifact import (
    TEACHER_CARD,
    check_compatible,
    read_teacher_card,
)
from seawatch.models.training import seed_everything, select_device, training_progress

DEFAULT_COMMAND = "seawatch train otolith"


@dataclass(slots=True)
class _Data:
    train: np.ndarray  # N x 3 x S x S uint8 RGB, prepared
    textures: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    calibration: np.ndarray  # BGR renders, scored through the serving head
    test: np.ndarray
    test_labels: np.ndarray


def train_otolith(
    out_dir: Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    epochs: int | None = None,
    teacher_weights: Path | None = None,
    far: float = 0.01,
    command: str = DEFAULT_COMMAND,
    quick: bool = False,
    plan: Plan | None = None,
) -> ModelCard:
    """Train, calibrate, evaluate and export the detector into ``out_dir``; return its card.

    ``plan`` sets data sizes and schedules (default :class:`Plan`, or :data:`QUICK` when
    ``quick``); ``epochs`` overrides its student epochs; ``far`` is the target false-alarm
    rate of the threshold on normal specimens.
    """
    plan = plan or (QUICK if quick else Plan())
    plan = plan if epochs is None else replace(plan, epochs=epochs)
    if plan.epochs < 1 or not 0.0 < far < 1.0:
        msg = f"epochs must be >= 1 and far in (0, 1), got {plan.epochs} and {far}"
        raise ValueError(msg)
    check_views(plan.views)  # before hours of training, not at export
    device = select_device(device)
    seed_everything(seed)
    clock = _Clock()
    loaded = None if teacher_weights is None else _loaded_teacher(Path(teacher_weights), plan)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with training_progress() as progress:
        data = _generate(plan, seed, progress)
        clock.lap("data")
        rgb_mean, rgb_std = channel_stats(data.train)
        if loaded is not None:
            teacher, teacher_info, norm = loaded
            teacher = teacher.to(device)
            rgb_mean, rgb_std = norm or (rgb_mean, rgb_std)
            _copy_teacher_card(Path(teacher_weights), out_dir)  # type: ignore[arg-type]
        else:
            teacher, teacher_history = pretrain_for_plan(
                plan, data.train, data.textures, (rgb_mean, rgb_std), seed, device, progress
            )
            teacher_info = {
                "source": TEACHER_TASK,
                "images": f"{len(data.train)} normal otoliths, corrupted on the fly; "
                f"{len(data.textures)} dead-leaves images as foreign textures",
                "epochs": plan.teacher_epochs,
                "hard_negative_epochs": plan.teacher_hard_epochs,
                "history": teacher_history,
            }
        if loaded is None:  # a card left by an earlier run would describe another teacher
            (out_dir / TEACHER_CARD).unlink(missing_ok=True)
        if not (out_dir / TEACHER_CARD).is_file():  # else the pretrained one was copied
            torch.save(teacher.state_dict(), out_dir / TEACHER_FILE)
        clock.lap("teacher")
        students = {}
        for student_input in ("gray", "rgb") if plan.ablation else ("gray",):
            students[student_input] = _student(
                teacher, student_input, data, plan, (rgb_mean, rgb_std), seed, device, progress
            )
            clock.lap(f"student_{student_input}")
    model, history, top_k_auroc = students["gray"]
    onnx_path = export_otolith(model, out_dir / ONNX_FILE, plan.input_size)
    real = data.val[:: max(1, len(data.val) // 8)][:8]
    parity = export_parity(model, onnx_path, real, seed=seed)
    provisional = detector_card(
        plan, model, onnx_path, {THRESHOLD_KEY: 0.0}, training_summary(command, seed)
    )
    with OnnxRuntimeBackend(onnx_path, threads=2) as backend:
        detector = OtolithDetector(backend, provisional, max_batch=32)
        calibration_scores, _ = score_images(detector, data.calibration)
        threshold = calibrate_threshold(calibration_scores, far)
        scores, maps = score_images(detector, data.test)
    evaluation = detection_metrics(data.test_labels, scores, threshold) | {
        "seed": seed + OFFSETS["test"]
    }
    (out_dir / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
    metrics = evaluation | {
        "split": "test (synthetic, held-out seed, never trained or calibrated on; a development "
        "figure once lab runs score it: final numbers come from benchmarks/otolith_final.py)",
        "calibration": {
            "n": len(calibration_scores),
            "target_false_alarm_rate": far,
            "false_alarm_rate": round(float((calibration_scores > threshold).mean()), 4),
        },
        "validation": {"top_k_auroc": top_k_auroc, "top_k": model.top_k},
        "onnx_parity_max_abs_diff": parity,
        "history": history,
    }
    extra = {}
    if "rgb" in students:
        metrics["ablation"], ablation_scores = _ablation(students["rgb"], data, plan, far, device)
        extra["same-input (RGB student)"] = (data.test_labels != NORMAL, ablation_scores)
    write_figures(
        out_dir,
        data.test,
        data.test_labels,
        scores,
        maps,
        threshold,
        title=f"{NAME} {VERSION}",
        extra_curves=extra,
    )
    clock.lap("export_calibration_evaluation")
    summary = training_summary(
        command,
        seed,
        plan=plan,
        device=device,
        seconds=clock.total(),
        timings=clock.laps,
        teacher=teacher_info,
        far=far,
    )
    thresholds = {THRESHOLD_KEY: round(threshold, 6), f"{THRESHOLD_KEY}_target_far": far}
    card = detector_card(plan, model, onnx_path, thresholds, summary, metrics)
    card.write(out_dir)
    return card


def _loaded_teacher(
    weights: Path, plan: Plan
) -> tuple[torch.nn.Module, dict[str, Any], tuple[tuple[float, ...], tuple[float, ...]] | None]:
    """A teacher from ``weights``, what the card records of it, and its normalisation.

    With a ``teacher.json`` beside the weights (``seawatch train otolith-teacher``), the
    architecture is checked against the plan before anything trains, the teacher's own
    input normalisation is kept and its provenance copied; a bare state_dict is taken as is.
    """
    card = read_teacher_card(weights)
    if card is not None:
        check_compatible(card, plan, weights)
    teacher = load_teacher(weights, plan.widths, plan.stem_stride, plan.teacher_depth)
    info: dict[str, Any] = {"source": f"loaded state_dict {weights}"}
    if card is None:
        return teacher, info, None
    info |= {"pretrained": card.provenance()}
    return teacher, info, (card.rgb_mean, card.rgb_std)


def _copy_teacher_card(weights: Path, out_dir: Path) -> None:
    """Copy a pretrained teacher's weights and card beside the detector, byte for byte."""
    card = weights.with_name(TEACHER_CARD)
    if not card.is_file():
        return
    for source in (weights, card):
        target = out_dir / (TEACHER_FILE if source == weights else TEACHER_CARD)
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)


class _Clock:
    """Wall-clock laps of the training phases."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def _generate(plan: Plan, seed: int, progress: Any) -> _Data:
    """Render every set from its own seed (train, textures, validation, calibration, test)."""

    def render(label: str, offset: int, n_normal: int, n_per: int = 0, prepare: bool = True):
        task = progress.add_task(label, total=n_normal + n_per * len(ANOMALY_TYPES), info="")
        return make_dataset(
            np.random.default_rng(seed + offset),
            n_normal=n_normal,
            n_per_anomaly=n_per,
            size=plan.render_size,
            transform=prepared(plan.input_size) if prepare else None,
            progress=lambda n: progress.advance(task, n),
        )

    train, textures = render_training_set(plan, seed, progress)
    val, val_labels = render(
        "validation", OFFSETS["validation"], plan.n_val_normal, plan.n_val_per_anomaly
    )
    calibration, _ = render(
        "calibration (normal)", OFFSETS["calibration"], plan.n_calibration, prepare=False
    )
    test, test_labels = render(
        "test", OFFSETS["test"], plan.n_test_normal, plan.n_test_per_anomaly, prepare=False
    )
    return _Data(train, textures, val, val_labels, calibration, test, test_labels)


def _student(
    teacher: torch.nn.Module,
    student_input: str,
    data: _Data,
    plan: Plan,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    seed: int,
    device: str,
    progress: Any,
) -> tuple[OtolithMKD, list[dict[str, float]], dict[str, float]]:
    """Distil one student (gray: the model; rgb: the ablation) and calibrate its map."""
    torch.manual_seed(seed + 1)
    model = OtolithMKD(
        teacher,
        Student(1 if student_input == "gray" else 3, plan.widths, plan.stem_stride),
        student_input=student_input,  # type: ignore[arg-type]
        rgb_mean=norm[0],  # type: ignore[arg-type]
        rgb_std=norm[1],  # type: ignore[arg-type]
        direction_weight=plan.direction_weight,
    ).to(device)
    D.set_feature_scales(model, data.train[: min(len(data.train), 256)], device)
    history = D.distil(
        model,
        data.train,
        data.val,
        data.val_labels,
        label=f"student {student_input}",
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        lr=plan.lr,
        seed=seed,
        device=device,
        progress=progress,
    )
    model.views = plan.views
    _, top_k_auroc = D.calibrate_map(model, data.val, data.val_labels, device)
    return model.cpu().eval(), history, top_k_auroc


def _ablation(
    student: tuple[OtolithMKD, list[dict[str, float]], dict[str, float]],
    data: _Data,
    plan: Plan,
    far: float,
    device: str,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score the same-input student (torch) on the same calibration and test sets."""
    model, history, top_k_auroc = student
    to_input = prepared(plan.input_size)

    def scores(images: np.ndarray) -> np.ndarray:
        flat = D.heatmaps(model, np.stack([to_input(im) for im in images]), device)
        flat = -np.sort(-flat.reshape(len(flat), -1), axis=1)
        return flat[:, : model.top_k].mean(1)

    threshold = calibrate_threshold(scores(data.calibration), far)
    test_scores = scores(data.test)
    summary = {
        "student_input": "rgb: the student sees the same colour image as the teacher",
        "auroc": round(auroc(data.test_labels != NORMAL, test_scores), 4),
        "metrics_at_its_own_threshold": detection_metrics(data.test_labels, test_scores, threshold),
        "validation": {"top_k_auroc": top_k_auroc, "top_k": model.top_k},
        "history": history,
    }
    return summary, test_scores
