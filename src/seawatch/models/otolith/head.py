"""The otolith task head and plug-in: decoded photographs -> anomaly score, flag, heat map.

The model (see :mod:`seawatch.models.otolith`) takes float32 N x 3 x S x S RGB images with
values 0..255 and returns ``score`` (N,) and ``heatmap`` (N x h x w, same units); a specimen
is an anomaly when its score is above the card's ``anomaly_score`` threshold. numpy, OpenCV
and a :class:`~seawatch.inference.backend.Backend` only: training uses the same
:func:`prepare_otolith`, so what is served is what was trained on. A flagged specimen keeps a
thumbnail and a heat-map overlay as evidence, written before its record is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from seawatch.contracts.card import ModelCard, load_card
from seawatch.contracts.errors import BackendError, ConfigError, FrameError
from seawatch.contracts.evidence import evidence_paths, thumbnail
from seawatch.contracts.frames import Frame
from seawatch.contracts.preprocess import planar_batch, planar_float32, to_gray8
from seawatch.contracts.records import OtolithRecord
from seawatch.contracts.task import (
    PreparedFrame,
    TaskInputs,
    TaskOptions,
    TaskPlugin,
    TaskResult,
    parse_options,
)
from seawatch.inference.backend import Backend
from seawatch.inference.batching import run_in_chunks
from seawatch.models.otolith.serving_views import (
    CPU_BACKENDS,
    OPTION,
    recommended_views,
    serving_dir,
)

log = logging.getLogger(__name__)

TASK = "otolith"
THRESHOLD_KEY = "anomaly_score"
_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}


@dataclass(frozen=True, slots=True)
class OtolithResult:
    """The detector's answer for one specimen."""

    score: float
    anomaly: bool
    threshold: float
    heatmap: np.ndarray  # float32 h x w, same units as score


def prepare_otolith(image: np.ndarray, size: int) -> np.ndarray:
    """Turn a decoded photograph into the model input: float32 3 x size x size, RGB, 0..255.

    The float conversion of :func:`otolith_input8`, which holds the rules.
    """
    return planar_float32(otolith_input8(image, size))


def otolith_input8(image: np.ndarray, size: int) -> np.ndarray:
    """A decoded photograph -> size x size x 3 uint8 RGB: the model input before its float
    conversion (:func:`prepare_otolith`, or :func:`planar_batch` for a batch).

    Accepts H x W gray, H x W x 3 BGR or H x W x 4 BGRA (OpenCV's decode order), 8 or 16 bit
    (16-bit scaled as :func:`~seawatch.contracts.preprocess.to_gray8` does). Gray images are
    replicated to three channels; non-square images are padded to a square with the median
    colour of their border (the tray), then resized (area interpolation when shrinking).
    """
    if image.dtype not in (np.uint8, np.uint16):
        msg = f"otolith image dtype {image.dtype} is not supported; expected uint8 or uint16"
        raise ValueError(msg)
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    if channels == 1 and image.ndim == 3:
        image = image[..., 0]
    if channels not in _TO_RGB or min(image.shape[:2]) < 1:
        msg = (
            f"otolith image shape {image.shape} is not an image; expected H x W (gray), "
            "H x W x 3 (BGR) or H x W x 4 (BGRA)"
        )
        raise ValueError(msg)
    if image.dtype == np.uint16:  # one shift for all channels keeps the colour balance
        image = to_gray8(image.reshape(image.shape[0], -1)).reshape(image.shape)
    rgb = cv2.cvtColor(image, _TO_RGB[channels])
    h, w = rgb.shape[:2]
    if h != w:
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        fill = [int(c) for c in np.median(border, axis=0)]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        rgb = cv2.copyMakeBorder(
            rgb, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=fill
        )
    interpolation = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


class OtolithDetector:
    """Runs prepared images through a backend in batches of at most ``max_batch``.

    ``card`` is the served graph's (a view variant's, with its own threshold and release);
    ``views`` is only said, in logs and tests: the graph does the views itself.
    """

    name = TASK

    def __init__(
        self, backend: Backend, card: ModelCard, *, max_batch: int, views: int | None = None
    ) -> None:
        if max_batch < 1:
            msg = f"max_batch must be at least 1, got {max_batch}"
            raise ValueError(msg)
        if card.task != "otolith":
            msg = f"OtolithDetector needs an otolith model card, got task={card.task!r}"
            raise ConfigError(msg)
        if THRESHOLD_KEY not in card.thresholds:
            msg = (
                f"otolith card {card.name} {card.version} has no thresholds.{THRESHOLD_KEY}; "
                "retrain with `seawatch train otolith` or add the calibrated threshold"
            )
            raise ConfigError(msg)
        outputs = card.outputs or ["score", "heatmap"]
        if "score" not in outputs or "heatmap" not in outputs:
            msg = f"otolith card outputs {outputs} must name 'score' and 'heatmap'"
            raise ConfigError(msg)
        self.backend = backend
        self.card = card
        self.max_batch = max_batch
        self.threshold = float(card.thresholds[THRESHOLD_KEY])  # the served graph's own
        self.views = views  # test-time views of the served graph (None: not said)
        self._score_at, self._heatmap_at = outputs.index("score"), outputs.index("heatmap")
        self._n_outputs = len(outputs)

    @property
    def input_size(self) -> int:
        """Side S of the square model input."""
        return self.card.input.size

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """A decoded image -> float32 3 x S x S RGB 0..255 (see :func:`prepare_otolith`)."""
        return prepare_otolith(image, self.input_size)

    def input8(self, image: np.ndarray) -> np.ndarray:
        """A decoded image -> S x S x 3 uint8 RGB; the router stacks a batch of them with
        :func:`~seawatch.contracts.preprocess.planar_batch`."""
        return otolith_input8(image, self.input_size)

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        """One specimen: its uint8 model input and a thumbnail kept for the evidence."""
        try:
            model_input = self.input8(image)
        except ValueError as exc:
            raise FrameError("prepare", f"{TASK} input: {exc}") from exc
        return TaskInputs([model_input], thumbnail=thumbnail(image))

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray:
        """The batch's specimens as one float32 N x 3 x S x S tensor."""
        return planar_batch([prepared.crops[0] for prepared in frames])

    def finish(
        self,
        frames: Sequence[PreparedFrame],
        outputs: tuple[np.ndarray, np.ndarray],
        infer_ms: float,
    ) -> list[TaskResult]:
        """Scores -> one OtolithRecord per specimen; a flagged one keeps its thumbnail and
        heat-map overlay as evidence."""
        per_frame_ms = infer_ms / max(1, len(frames))
        results = []
        for prepared, answer in zip(frames, self.interpret(outputs), strict=True):
            evidence, thumb_path, heat_path = [], None, None
            if answer.anomaly and prepared.thumbnail is not None:
                thumb_path, heat_path = evidence_paths(prepared.frame.meta, TASK)
                overlay = overlay_heatmap(prepared.thumbnail, answer.heatmap, answer.threshold)
                evidence = [(thumb_path, prepared.thumbnail), (heat_path, overlay)]
            record = OtolithRecord(
                specimen_id=prepared.frame.meta.specimen_id,
                score=round(answer.score, 6),
                anomaly=answer.anomaly,
                threshold=answer.threshold,
                thumbnail=thumb_path,
                heatmap=heat_path,
            )
            results.append(TaskResult(per_frame_ms, otolith=record, evidence=evidence))
        return results

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()

    def predict(self, tensor: np.ndarray) -> list[OtolithResult]:
        """Score a batch tensor (N x 3 x S x S float32 0..255) of any N."""
        return self.interpret(self.infer(tensor))

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backend alone (in chunks of ``max_batch``): scores (N,), heat maps N x h x w."""
        size = self.input_size
        if tensor.ndim != 4 or tensor.shape[1:] != (3, size, size):
            msg = f"otolith input must be N x 3 x {size} x {size}, got shape {tensor.shape}"
            raise ValueError(msg)
        chunks = np.ascontiguousarray(tensor, np.float32)
        runs = run_in_chunks(self._run, chunks, self.max_batch)
        if not runs:
            return np.zeros(0, np.float32), np.zeros((0, 0, 0), np.float32)
        return np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs])

    def interpret(self, outputs: tuple[np.ndarray, np.ndarray]) -> list[OtolithResult]:
        """Scores and heat maps (from :meth:`infer`) -> one answer per specimen."""
        scores, heatmaps = outputs
        return [
            OtolithResult(
                score=float(s),
                anomaly=bool(s > self.threshold),
                threshold=self.threshold,
                heatmap=h,
            )
            for s, h in zip(scores, heatmaps, strict=True)
        ]

    def _run(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One backend call; checks the outputs are (n,) scores and n x h x w heat maps."""
        outputs = self.backend.run_outputs(chunk)
        n = len(chunk)
        if len(outputs) != self._n_outputs:
            msg = (
                f"otolith model returned {len(outputs)} outputs; its card lists "
                f"{self._n_outputs} ({', '.join(self.card.outputs)})"
            )
            raise BackendError(msg)
        scores = np.asarray(outputs[self._score_at], np.float32)
        heatmaps = np.asarray(outputs[self._heatmap_at], np.float32)
        if scores.shape != (n,) or heatmaps.ndim != 3 or heatmaps.shape[0] != n:
            msg = (
                f"otolith model returned score {scores.shape} and heatmap {heatmaps.shape} for "
                f"{n} inputs; expected ({n},) and ({n}, h, w): is this an otolith model?"
            )
            raise BackendError(msg)
        return scores, heatmaps


def overlay_heatmap(image_bgr: np.ndarray, heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """Blend a heat map over a photograph (BGR uint8) and outline where it passes the threshold.

    Colour runs from blue (0) to red (twice the threshold); cool regions are blended lightly
    so the specimen stays visible. Gray or BGRA photographs are converted to BGR first.
    """
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    elif image_bgr.shape[2] == 4:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
    if image_bgr.dtype != np.uint8:
        image_bgr = to_gray8(image_bgr.reshape(image_bgr.shape[0], -1)).reshape(image_bgr.shape)
    h, w = image_bgr.shape[:2]
    scale = 2.0 * threshold if threshold > 0 else max(float(heatmap.max()), 1e-6)
    heat = cv2.resize(heatmap.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    level = np.clip(heat / scale, 0.0, 1.0)
    colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (0.25 + 0.45 * level)[..., None]
    out = (image_bgr * (1.0 - weight) + colour * weight).astype(np.uint8)
    hot = (heat > threshold).astype(np.uint8)
    contours, _ = cv2.findContours(hot, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, round(min(h, w) / 200)))
    return out


class OtolithOptions(TaskOptions):
    """``tasks.otolith.options``: ``views``, the test-time views averaged per specimen (1, 4
    or 8; ``auto``: the card's measured recommendation for the backend in use). Each view
    count is its own graph with its own calibrated threshold
    (:mod:`seawatch.models.otolith.serving_views`)."""

    views: Literal["auto", 1, 4, 8] = Field(
        "auto", description="test-time views per specimen: 1, 4, 8 or auto"
    )

    @field_validator("views", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        """``"4"`` (an environment variable, a quoted YAML value) is 4."""
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _load(task, settings) -> OtolithDetector:
    """The head from ``tasks.otolith`` (``max_batch`` in specimens; 8 by default), serving
    the graph of the asked (or, with ``auto``, recommended) number of views."""
    from seawatch.config import resolve_model_dir
    from seawatch.inference.artifact import open_artifact
    from seawatch.inference.selection import choose_backend

    options = parse_options(OtolithOptions, TASK, task.options)
    max_batch = task.batch(settings.inference.max_batch)
    if task.model_dir is None:  # open_artifact says what to set
        open_artifact(TASK, None, settings.inference, max_batch=max_batch)
    top = resolve_model_dir(Path(task.model_dir))
    card = load_card(top)
    inference = settings.inference
    planned = None  # the backend class auto chose the views for
    if options.views == "auto":
        planned, _ = choose_backend(inference.backend, top)  # probes only; opens nothing
        views, why = recommended_views(card, planned)
    else:
        views, why = options.views, f"{OPTION} = {options.views}"
    artifact = open_artifact(
        TASK,
        serving_dir(top, card, views),
        inference,
        max_batch=max_batch,
        sample_inputs=sample_inputs,  # a new engine's parity check: otoliths, not noise
    )
    served = artifact.backend.name
    if planned is not None and (served in CPU_BACKENDS) != (planned in CPU_BACKENDS):
        # auto fell back from a GPU backend that failed to open: the CPU's recommendation
        fallback, why = recommended_views(card, served)
        if fallback != views:
            artifact.backend.close()
            views, cpu = fallback, inference.model_copy(update={"backend": served})
            artifact = open_artifact(TASK, serving_dir(top, card, views), cpu, max_batch=max_batch)
    log.info(
        "otolith_views views=%d requested=%s backend=%s release=%s reason=%r",
        views,
        options.views,
        artifact.backend.name,
        artifact.card.release,
        why,
    )
    return OtolithDetector(artifact.backend, artifact.card, max_batch=max_batch, views=views)


def model_input(card: ModelCard, image: np.ndarray) -> np.ndarray:
    """One decoded photograph -> one model input (3 x S x S float32 RGB)."""
    return prepare_otolith(image, card.input.size)


def sample_inputs(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """``n`` model inputs like live ones (N x 3 x S x S float32 0..255): synthetic otolith
    photographs at the card's render size, every third with a defect (each type in turn), so
    parity checks and INT8 calibration see normal and anomalous scores and heat maps."""
    from seawatch.models.otolith.synthetic import ANOMALY_TYPES, render_otolith

    rng = np.random.default_rng(seed)
    render = int((card.training.data or {}).get("render_size", 2 * card.input.size))
    kinds = [ANOMALY_TYPES[(i // 3) % len(ANOMALY_TYPES)] if i % 3 == 2 else None for i in range(n)]
    images = [render_otolith(rng, size=render, anomaly=kind) for kind in kinds]
    return np.stack([prepare_otolith(image, card.input.size) for image in images])


PLUGIN = TaskPlugin(
    name=TASK,
    load=_load,
    sample_inputs=sample_inputs,
    model_input=model_input,
    description="otolith anomaly detector: score, flag, threshold, heat map",
)

__all__ = [
    "PLUGIN",
    "THRESHOLD_KEY",
    "OtolithDetector",
    "OtolithOptions",
    "OtolithResult",
    "otolith_input8",
    "overlay_heatmap",
    "prepare_otolith",
]
