"""The otolith threshold calibrated on a user's own normal specimens (no torch).

A scanner, a light and a species of one's own shift every specimen's score: the threshold
the card carries, calibrated on synthetic normals, then flags too many or too few. Given a
folder of the user's normal otoliths, :func:`recalibrate` scores them through the artifact
(ONNX Runtime, the served graph), sets ``thresholds.anomaly_score`` so that at most the target
share of them would be flagged, and writes a new artifact: the same graph, a card that says
what changed and on what data (its release changes with its version). Re-distilling the
student itself on the user's normals is :mod:`.redistil` (``train otolith --normal-dir``,
torch), which calibrates its threshold with :func:`artifact_scores` the same way.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.image_files import IMAGE_SUFFIXES, read_image
from seawatch.inference.factory import open_backend
from seawatch.models.otolith.evaluate import calibrate_threshold, score_images
from seawatch.models.otolith.head import THRESHOLD_KEY, OtolithDetector
from seawatch.models.otolith.serving_views import (
    SERVING_KEY,
    SERVING_VIEWS,
    variant_dir,
    variant_version,
)

MIN_NORMALS = 20


def normal_images(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """Every readable image under ``folder``; the unreadable ones named, not dropped."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images, skipped = [], []
    for path in paths:
        try:
            images.append(read_image(path))
        except (ValueError, OSError) as exc:
            skipped.append(f"{path}: {exc}")
    if len(images) < MIN_NORMALS:
        msg = (
            f"--normal-dir {folder}: {len(images)} readable images; calibrating a threshold "
            f"needs at least {MIN_NORMALS} normal specimens (more is better: 1 % needs ~300)"
        )
        raise ConfigError(msg)
    return images, skipped


def recalibrate(
    model: Path, normal_dir: Path, out: Path, *, far: float, version: str | None, command: str
) -> ModelCard:
    """Write ``out``: the artifact at ``model`` with its threshold set on ``normal_dir``."""
    card = load_card(model)
    if card.task != "otolith":
        msg = f"{model} is a {card.task!r} model; recalibration is for otolith detectors"
        raise ConfigError(msg)
    images, skipped = normal_images(normal_dir)
    scores = artifact_scores(Path(model), card, images)
    threshold = calibrate_threshold(scores, far)
    before = float(card.thresholds[THRESHOLD_KEY])
    if Path(out).resolve() != Path(model).resolve():
        shutil.copytree(model, out, dirs_exist_ok=True)
    calibration = {
        "data": str(normal_dir),
        "normal_specimens": len(scores),
        "unreadable": len(skipped),
        "target_false_alarm_rate": far,
        "threshold_before": round(before, 6),
        "threshold_after": round(threshold, 6),
        "false_alarm_rate_before": round(float((scores > before).mean()), 4),
        "score_quantiles": {
            q: round(float(np.quantile(scores, float(q))), 4) for q in ("0.5", "0.9", "0.99")
        },
        "command": command,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    version = version or f"{card.version}.cal{datetime.now(UTC):%Y%m%d}"
    metrics = {**card.metrics, "user_calibration": calibration}
    table = _recalibrate_variants(Path(model), Path(out), images, far, version, calibration)
    if table is not None:
        metrics[SERVING_KEY] = table
    updated = _with_threshold(card, threshold, far, version, metrics, calibration["at"])
    updated.write(out)
    return load_card(out)


def artifact_scores(
    directory: Path, card: ModelCard, images: list[np.ndarray] | np.ndarray
) -> np.ndarray:
    """The scores of ``images`` through the artifact at ``directory`` (its own graph)."""
    with open_backend("onnxruntime", directory / ONNX_FILE, threads=0) as backend:
        detector = OtolithDetector(backend, card, max_batch=8)
        return score_images(detector, images, chunk=8)[0]


def _with_threshold(
    card: ModelCard, threshold: float, far: float, version: str, metrics: dict, at: str
) -> ModelCard:
    return card.model_copy(
        update={
            "version": version,
            "thresholds": {
                **card.thresholds,
                THRESHOLD_KEY: round(threshold, 6),
                f"{THRESHOLD_KEY}_target_far": far,
            },
            "metrics": metrics,
            "created_at": at,
        }
    )


def _recalibrate_variants(
    model: Path, out: Path, images: list[np.ndarray], far: float, version: str, done: dict
) -> dict | None:
    """Recalibrate each view variant into ``out``; the parent's serving table, updated (None
    when the artifact has none)."""
    parent = load_card(model)
    table = parent.metrics.get(SERVING_KEY)
    for views in SERVING_VIEWS:
        source = variant_dir(model, views)
        if not (source / "card.json").is_file():
            continue
        card = load_card(source)
        scores = artifact_scores(source, card, images)
        threshold = calibrate_threshold(scores, far)
        note = {
            **done,
            "threshold_before": round(float(card.thresholds[THRESHOLD_KEY]), 6),
            "threshold_after": round(threshold, 6),
            "false_alarm_rate_before": round(
                float((scores > card.thresholds[THRESHOLD_KEY]).mean()), 4
            ),
        }
        metrics = {**card.metrics, "user_calibration": note}
        updated = _with_threshold(
            card, threshold, far, variant_version(version, views), metrics, done["at"]
        )
        updated.write(variant_dir(out, views))
        if isinstance(table, dict) and str(views) in table.get("choices", {}):
            choice = table["choices"][str(views)]
            choice |= {
                "threshold": round(threshold, 6),
                "release": load_card(variant_dir(out, views)).release,
            }
    if isinstance(table, dict):
        trained = table.get("choices", {}).get(str(table.get("trained")))
        if trained is not None:
            release = parent.model_copy(update={"version": version}).release
            trained |= {"threshold": done["threshold_after"], "release": release}
        table = {**table, "thresholds_from": "user_calibration (AUROC and speed: synthetic)"}
    return table


__all__ = ["MIN_NORMALS", "artifact_scores", "normal_images", "recalibrate"]
