"""Full frames cut by the segmentation model (``ingest.segmentation.method: model``).

The plankton head hands the work to :class:`ModelCutter` in three places:

- ``prepare`` (decode threads): :meth:`ModelCutter.pending` makes the network's input (the
  frame's flat-field signal at half size) and the windows of it the network will see
  (:mod:`seawatch.ingest.segment_windows`: around what a permissive proposal finds; the
  whole frame with ``windows=False``), and keeps the 8-bit frame for cutting;
- ``infer`` (the inference thread): :meth:`ModelCutter.cut` runs the segmentation network on
  every pending frame's windows (windows of one shape stacked, in chunks of ``max_batch``),
  turns its maps into objects (:mod:`seawatch.ingest.segment_model`: instances, measures
  from the model's masks, crops), and runs the quality network on every instance, batched;
  the head then classifies the crops in the same call;
- ``finish`` (loop thread): the objects, their crops for review and the frame's
  segmentation quality go into the frame's record; a frame scored under ``review_below``
  puts its objects at the top of the review station's "most likely wrong" queue.

Both networks run on ONNX Runtime with the inference thread count of the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seawatch.contracts.card import CARD_FILE, ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import BackendError, ConfigError, FrameError
from seawatch.contracts.objects import SegmentedObject
from seawatch.contracts.preprocess import prepare_roi
from seawatch.inference.backend import Backend
from seawatch.inference.batching import run_in_chunks
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.segment import SegmentParams
from seawatch.ingest.segment_model import (
    QUALITY_CHANNELS,
    QUALITY_SIZE,
    ModelInput,
    frame_score,
    model_input,
    objects_from_maps,
    quality_windows,
)
from seawatch.ingest.segment_windows import Window, network_maps, proposal_windows

SEGMENTATION_TASK = "segmentation"  # the card's task
QUALITY_FILE = "quality"  # the card's files role of the quality network
log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingCut:
    """A full frame waiting for the model: its 8-bit image, the network's input and the
    windows of it the network runs on."""

    gray: np.ndarray
    made: ModelInput
    pixel_size_um: float | None
    windows: list[Window]


@dataclass(slots=True)
class Cut:
    """What the model made of one frame: objects, classifier inputs, quality."""

    objects: list[SegmentedObject] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    score: float | None = None  # mean predicted IoU of its objects; None without any
    error: str | None = None  # why the frame got no objects (a frame-level refusal)


class FullFrameBatch:
    """A plankton batch with frames still to cut: the classifier inputs of the frames
    already cut (ROI frames) and the pending full frames, in frame order.

    ``batch[:n]`` (the rows the router records for model-swap checks) is the first ``n``
    classifier rows, a plain tensor like any plankton batch.
    """

    def __init__(self, crops: np.ndarray | None, pending: list[PendingCut], size: int) -> None:
        self.crops = crops if crops is not None else np.zeros((0, 1, size, size), np.float32)
        self.pending = pending

    def __len__(self) -> int:
        return len(self.crops) + len(self.pending)

    def __getitem__(self, index: slice) -> np.ndarray:
        return self.crops[index]


@dataclass(slots=True)
class CutOutputs:
    """The classifier's outputs for every object of the batch (ROI frames first, then the
    cut frames' objects, in order) and the cuts."""

    outputs: object
    cuts: list[Cut]


def _backend(path: Path, threads: int) -> Backend:
    return OnnxRuntimeBackend(path, threads=threads)


class ModelCutter:
    """The segmentation and quality networks of one artifact, and the cutting rules."""

    def __init__(
        self,
        segmenter: Backend,
        quality: Backend,
        card: ModelCard,
        params: SegmentParams,
        *,
        classifier_size: int,
        max_batch: int,
        review_below: float,
        windows: bool = True,
    ) -> None:
        if max_batch < 1 or not 0.0 <= review_below <= 1.0:
            msg = f"need max_batch >= 1 and review_below in [0, 1]; got {max_batch}, {review_below}"
            raise ValueError(msg)
        self.segmenter, self.quality, self.card = segmenter, quality, card
        self.params = params
        self.classifier_size = classifier_size
        self.max_batch = max_batch
        self.review_below = review_below
        self.stride = int(card.thresholds.get("stride", 32))
        self.windows = windows  # run the network on proposal windows, not the whole frame

    def pending(self, gray: np.ndarray, pixel_size_um: float | None) -> PendingCut:
        """The network's input of one decoded full frame and the windows of it the network
        will run on (decode threads)."""
        made = model_input(gray, self.params, self.stride)
        h, w = made.signal.shape
        windows = proposal_windows(made, self.stride) if self.windows else [Window(0, 0, w, h)]
        return PendingCut(gray, made, pixel_size_um, windows)

    def cut(self, frames: Sequence[PendingCut]) -> list[Cut]:
        """Segment, measure, crop and score ``frames`` (the inference thread)."""
        maps = [network_maps(self._segment_all, p.made, p.windows) for p in frames]
        cuts, windows, owners = [], [], []
        for i, (pending, m) in enumerate(zip(frames, maps, strict=True)):
            try:
                objects, small, kept = objects_from_maps(
                    pending.gray, m, self.params, pending.pixel_size_um
                )
            except FrameError as exc:
                log.warning("segment_model_refused reason=%r", exc.reason)
                cuts.append(Cut(score=0.0, error=exc.reason))
                continue
            crops = [prepare_roi(obj.image, self.classifier_size) for obj in objects]
            cuts.append(Cut(objects, crops))
            windows.append(quality_windows(pending.made.signal, m, small, kept))
            owners += [i] * len(kept)
        if owners:
            stacked = np.concatenate(windows)
            scores = np.concatenate(run_in_chunks(self._score, stacked, self.max_batch * 4))
            owner = np.array(owners)
            for i, cut in enumerate(cuts):
                if cut.error is None:
                    cut.score = frame_score(scores[owner == i])
        return cuts

    def _segment_all(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate(run_in_chunks(self._segment, batch, self.max_batch))

    def _segment(self, chunk: np.ndarray) -> np.ndarray:
        out = np.asarray(self.segmenter.run(chunk), np.float32)
        if out.shape != (len(chunk), 2, *chunk.shape[2:]):
            msg = (
                f"segmentation model gave {out.shape} for inputs {chunk.shape}; want N x 2 x H x W"
            )
            raise BackendError(msg)
        return out

    def _score(self, chunk: np.ndarray) -> np.ndarray:
        out = np.asarray(self.quality.run(chunk), np.float32).reshape(-1)
        if out.shape != (len(chunk),) or not np.isfinite(out).all():
            msg = f"quality model returned {out.shape} values for {len(chunk)} windows"
            raise BackendError(msg)
        return np.clip(out, 0.0, 1.0)

    def needs_review(self, score: float | None) -> bool:
        """True when a frame's segmentation is doubtful enough for a person to look."""
        return score is not None and score < self.review_below

    def close(self) -> None:
        """Close both networks."""
        self.segmenter.close()
        self.quality.close()


def open_cutter(
    model_dir: Path | None,
    params: SegmentParams,
    *,
    threads: int,
    classifier_size: int,
    max_batch: int,
    review_below: float,
    windows: bool = True,
) -> ModelCutter:
    """Open the segmentation artifact at ``model_dir`` (``ingest.segmentation.model_dir``)."""
    from seawatch.config import resolve_model_dir

    if model_dir is None:
        msg = (
            "ingest.segmentation.method is 'model' but ingest.segmentation.model_dir is not "
            "set; point it at a segmentation artifact (seawatch train segmentation) or use "
            "method: threshold"
        )
        raise ConfigError(msg)
    directory = resolve_model_dir(Path(model_dir))
    if not (directory / CARD_FILE).is_file():
        msg = (
            f"ingest.segmentation.model_dir {directory} holds no {CARD_FILE}; train one with "
            "`seawatch train segmentation --out DIR` and point model_dir at DIR, or use "
            "method: threshold"
        )
        raise ConfigError(msg)
    card = load_card(directory)
    if card.task != SEGMENTATION_TASK or QUALITY_FILE not in card.files:
        msg = (
            f"ingest.segmentation.model_dir {directory} holds a {card.task!r} model "
            f"({card.name}) without a quality network; point it at a segmentation artifact "
            "made by `seawatch train segmentation`"
        )
        raise ConfigError(msg)
    quality_path = directory / card.files[QUALITY_FILE]
    return ModelCutter(
        _backend(directory / ONNX_FILE, threads),
        _backend(quality_path, threads),
        card,
        params,
        classifier_size=classifier_size,
        max_batch=max_batch,
        review_below=review_below,
        windows=windows,
    )


__all__ = [
    "QUALITY_CHANNELS",
    "QUALITY_SIZE",
    "Cut",
    "CutOutputs",
    "FullFrameBatch",
    "ModelCutter",
    "PendingCut",
    "open_cutter",
]
