"""Full frames cut by the segmentation model (``ingest.segmentation.method: model``).

The plankton head hands the work to :class:`ModelCutter` in three places:

- ``prepare`` (the loop thread, or the decode threads): :meth:`ModelCutter.pending` makes
  the network's input (the frame's flat-field signal at half size) and hands it to the
  cutter's **segmentation thread(s)**, which pick the windows of it the network sees
  (:mod:`seawatch.ingest.segment_windows`: around what a permissive proposal finds; the
  whole frame with ``windows=False``) and run the segmentation network on them (windows of
  one shape stacked, in chunks of ``max_batch``). The network so runs beside the inference
  thread, which is busy with the batch before (post-processing, quality, classifier): on a
  CPU both cores work (issue 27), and the loop thread never waits for the network, so it
  keeps polling within the group's ``max_poll_interval_ms``;
- ``infer`` (the inference thread): :meth:`ModelCutter.cut` waits for every pending
  frame's maps, turns them into objects (:mod:`seawatch.ingest.segment_model`: instances,
  measures from the model's masks, crops) and runs the quality network on every instance,
  batched; the head then classifies the crops in the same call. A failed network run fails
  the batch, as any failed model call on the inference thread does;
- ``finish`` (loop thread): the objects, their crops for review and the frame's
  segmentation quality go into the frame's record; a frame scored under ``review_below``
  puts its objects at the top of the review station's "most likely wrong" queue.

Both networks run on ONNX Runtime with the inference thread count of the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

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
    split_levels,
)
from seawatch.ingest.segment_windows import Window, network_maps, proposal_windows

SEGMENTATION_TASK = "segmentation"  # the card's task
QUALITY_FILE = "quality"  # the card's files role of the quality network
log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingCut:
    """A full frame waiting to be cut: its 8-bit image, the network's input and its maps
    (being made on a segmentation thread)."""

    gray: np.ndarray
    made: ModelInput
    pixel_size_um: float | None
    segmented: Future[Segmented]


class Segmented(NamedTuple):
    """The segmentation network's answer for one frame: the windows it ran on and its maps
    (2 x H' x W', padding included)."""

    windows: list[Window]
    maps: np.ndarray


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
        workers: int = 1,
    ) -> None:
        if max_batch < 1 or workers < 1 or not 0.0 <= review_below <= 1.0:
            msg = (
                "need max_batch >= 1, workers >= 1 and review_below in [0, 1]; got "
                f"{max_batch}, {workers}, {review_below}"
            )
            raise ValueError(msg)
        self.segmenter, self.quality, self.card = segmenter, quality, card
        self.params = params
        self.classifier_size = classifier_size
        self.max_batch = max_batch
        self.review_below = review_below
        self.stride = int(card.thresholds.get("stride", 32))
        # the split of touching objects, chosen for this network on development frames
        self.core_level, self.merge_level = split_levels(card.thresholds)
        self.windows = windows  # run the network on proposal windows, not the whole frame
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="segment")

    def pending(self, gray: np.ndarray, pixel_size_um: float | None) -> PendingCut:
        """One decoded full frame's network input, handed to a segmentation thread
        (prepare stage)."""
        made = model_input(gray, self.params, self.stride)
        return PendingCut(gray, made, pixel_size_um, self._pool.submit(self.segment, made))

    def segment(self, made: ModelInput) -> Segmented:
        """The network's maps of one frame, from its proposal windows (or the whole frame)."""
        h, w = made.signal.shape
        windows = proposal_windows(made, self.stride) if self.windows else [Window(0, 0, w, h)]
        return Segmented(windows, network_maps(self._segment_all, made, windows))

    def cut(self, frames: Sequence[PendingCut]) -> list[Cut]:
        """Instances, measures, crops and quality of ``frames`` from their maps (the
        inference thread)."""
        cuts, windows, owners = [], [], []
        for i, pending in enumerate(frames):
            m = pending.segmented.result().maps
            try:
                objects, small, kept = objects_from_maps(
                    pending.gray,
                    m,
                    self.params,
                    pending.pixel_size_um,
                    core_level=self.core_level,
                    merge_level=self.merge_level,
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
        """Stop the segmentation threads once the frames handed to them are segmented (a
        batch still in flight gets its maps) and close both networks."""
        self._pool.shutdown(wait=True)
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
    workers: int = 1,
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
        workers=workers,
    )


__all__ = [
    "QUALITY_CHANNELS",
    "QUALITY_SIZE",
    "Cut",
    "CutOutputs",
    "FullFrameBatch",
    "ModelCutter",
    "PendingCut",
    "Segmented",
    "open_cutter",
]
