"""The otolith detector's card: what ``seawatch train otolith`` writes beside ``model.onnx``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from seawatch.contracts.card import InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.models.otolith.evaluate import EVALUATION_FILE, HEATMAPS_FILE, ROC_FILE
from seawatch.models.otolith.export import OUTPUTS
from seawatch.models.otolith.head import THRESHOLD_KEY
from seawatch.models.otolith.network import OtolithMKD, describe
from seawatch.models.otolith.plan import OFFSETS, Plan
from seawatch.models.otolith.synthetic import ANOMALY_TYPES
from seawatch.models.otolith.teacher import TEACHER_FILE
from seawatch.models.otolith.teacher_artifact import TEACHER_CARD

NAME, VERSION = "otolith-mkd-synthetic", "0.6.0"  # 0.5: pretrained teacher; 0.6: 8 views


def training_summary(
    command: str, seed: int, *, plan: Plan | None = None, **extra: Any
) -> TrainingSummary:
    """The card's training section: the command, the seeds and sizes of every set, the plan."""
    plan = plan or Plan()
    data = {
        "source": "synthetic (seawatch.models.otolith.synthetic.make_dataset), rendered at "
        f"{plan.render_size} px BGR, prepared by seawatch.models.otolith.head.prepare_otolith "
        f"to {plan.input_size} px RGB",
        "render_size": plan.render_size,
        "train": {"seed": seed, "n_normal": plan.n_train},
        "textures": {"seed": seed + OFFSETS["textures"], "n": plan.n_textures},
        "validation": {
            "seed": seed + OFFSETS["validation"],
            "n_normal": plan.n_val_normal,
            "n_per_anomaly": plan.n_val_per_anomaly,
            "used_for": "stage norms of the map and the choice of the image score",
        },
        "calibration": {"seed": seed + OFFSETS["calibration"], "n_normal": plan.n_calibration},
        "test": {
            "seed": seed + OFFSETS["test"],
            "n_normal": plan.n_test_normal,
            "n_per_anomaly": plan.n_test_per_anomaly,
        },
        "anomaly_types": list(ANOMALY_TYPES),
    }
    return TrainingSummary(
        command=command,
        seed=seed,
        data=data,
        epochs=plan.epochs,
        seconds=float(extra.pop("seconds", 0.0)),
        device=str(extra.pop("device", "cpu")),
        plan=asdict(plan),
        torch=torch.__version__,
        **extra,
    )


def detector_card(
    plan: Plan,
    model: OtolithMKD,
    onnx_path: Path,
    thresholds: dict[str, float],
    training: TrainingSummary,
    metrics: dict[str, Any] | None = None,
) -> ModelCard:
    """The detector's card: input contract, outputs, files beside the graph, thresholds, metrics."""
    teacher_card = (
        {"teacher_card": TEACHER_CARD} if (onnx_path.parent / TEACHER_CARD).is_file() else {}
    )
    gray = "0.299 R + 0.587 G + 0.114 B"
    return ModelCard(
        task="otolith",
        name=NAME,
        version=VERSION,
        architecture=describe(model),
        input=InputSpec(
            size=plan.input_size,
            channels=3,
            mean=tuple(float(v) for v in model.rgb_mean.flatten()),
            std=tuple(float(v) for v in model.rgb_std.flatten()),
            preprocessing="seawatch.models.otolith.head.prepare_otolith: RGB channel order, "
            f"values 0..255; the graph normalises per channel and makes the student's gray "
            f"({gray}) itself",
        ),
        output="score",
        outputs=OUTPUTS,
        files={
            "teacher_weights": TEACHER_FILE,
            "evaluation": EVALUATION_FILE,
            "roc": ROC_FILE,
            "heatmaps": HEATMAPS_FILE,
        }
        | teacher_card,
        thresholds=thresholds,
        training=training,
        metrics=metrics or {},
        onnx_sha256=sha256_file(onnx_path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def summary_line(out: Path, card: ModelCard) -> str:
    """One line with the headline numbers of a freshly trained artifact."""
    m = card.metrics
    ablation = m.get("ablation", {}).get("auroc", "n/a")
    detection = " ".join(f"{t}={r}" for t, r in m["detection_rate_per_type"].items())
    return (
        f"wrote {out}: auroc={m['auroc']} same_input_auroc={ablation} "
        f"threshold={card.thresholds[THRESHOLD_KEY]} false_alarm_rate={m['false_alarm_rate']} "
        f"detection: {detection} seconds={card.training.seconds}"
    )
