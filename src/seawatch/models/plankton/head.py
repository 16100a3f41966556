"""The plankton task head and plug-in: a frame -> objects -> taxon, confidence and top-k.

``prepare`` turns a decoded frame into 8-bit gray, cuts a full frame into objects (or
measures a ROI frame's one object) and fits each into the classifier's square input;
``finish`` turns class probabilities into one :class:`ObjectRecord` per object (the rows of
:mod:`seawatch.models.plankton.predictions`).

An object is ``unknown`` when its top-1 probability is under the card's
``unknown_confidence`` or, where the card carries an out-of-distribution score
(:mod:`seawatch.contracts.ood`) and the graph outputs ``features``, when that score is over
its threshold (the record's ``ood_flagged`` says which rule it was); a scorer fitted with
the stage-3 inputs reads the graph's ``stage3`` output too. A card without one is served as
before, softmax threshold only, and says so once in the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.crops import Crop, can_keep_as_sent, crop_as_sent, encode_crop
from seawatch.contracts.errors import BackendError, FrameError
from seawatch.contracts.frames import Frame, FrameKind
from seawatch.contracts.objects import SegmentedObject
from seawatch.contracts.ood import OodDetector, load_ood, stage3_output
from seawatch.contracts.ood_scorer import OodScorer
from seawatch.contracts.preprocess import batch_tensor, to_gray8
from seawatch.contracts.quality import measure_quality
from seawatch.contracts.records import ObjectRecord
from seawatch.contracts.task import (
    PreparedFrame,
    TaskInputs,
    TaskPlugin,
    TaskResult,
    parse_options,
)
from seawatch.inference.backend import Backend
from seawatch.inference.batching import run_in_chunks
from seawatch.ingest.segment import SegmentParams, measure_roi, segment_full
from seawatch.models.plankton.model_cut import (
    Cut,
    CutOutputs,
    FullFrameBatch,
    ModelCutter,
    open_cutter,
)
from seawatch.models.plankton.plugin_checks import (
    TASK,
    PlanktonOptions,
    check_model_cut,
    classifier_crops,
    model_input,
    sample_inputs,
    validate,
)
from seawatch.models.plankton.poll_ranking import poll_wrongness
from seawatch.models.plankton.predictions import PlanktonOutputs, Prediction, predictions

FEATURES = "features"
log = logging.getLogger(__name__)


class PlanktonClassifier:
    """Runs prepared crops through a backend in batches of at most ``max_batch``.

    Objects whose best probability is under the card's ``unknown_confidence`` threshold, or
    whose OOD score is over ``ood``'s threshold, are called ``unknown``; their top-k still
    names the candidates. ``ood`` needs a graph with a ``features`` output (the second).
    """

    name = TASK

    def __init__(
        self,
        backend: Backend,
        card: ModelCard,
        *,
        max_batch: int,
        top_k: int,
        segment: SegmentParams | None = None,
        keep_crops: bool = False,
        ood: OodDetector | OodScorer | None = None,
        cutter: ModelCutter | None = None,
    ) -> None:
        if max_batch < 1 or top_k < 1:
            msg = f"max_batch ({max_batch}) and top_k ({top_k}) must be at least 1"
            raise ValueError(msg)
        self.backend = backend
        self.card = card
        self.max_batch = max_batch
        self.top_k = min(top_k, len(card.class_names))
        self.classes = np.array(card.class_names)
        self.threshold = float(card.thresholds.get("unknown_confidence", 0.0))
        self.segment = segment or SegmentParams()
        self.input_size = card.input.size
        self.keep_crops = keep_crops  # encode each object's crop for the review station
        self.ranking = card.ranking_calibration()  # None: the store's fallback ranks
        self.ood = ood
        if ood is not None and FEATURES not in card.outputs:
            msg = (
                f"the card's OOD score needs the graph output {FEATURES!r} (outputs: "
                f"{card.outputs or [card.output]}); re-export with `seawatch train plankton-ood`"
            )
            raise BackendError(msg)
        self._features_at = card.outputs.index(FEATURES) if ood is not None else None
        self._stage3_at = stage3_output(card.outputs, ood)
        # with an OOD score, its fit may set a lower softmax bar (``ood.softmax_floor``): the
        # score, which reads the softmax too, then spends more of the in-distribution budget
        floor = (card.ood or {}).get("softmax_floor") if ood is not None else None
        self.unknown_below = self.threshold if floor is None else float(floor)
        self.cutter = cutter  # full frames cut by the segmentation model (method: model)

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        """8-bit gray -> objects (segmented, or the ROI's one) -> square classifier inputs
        (cut from the colour frame for a 3-channel model);
        full frames also get their quality measured, and each object's crop is encoded
        when crops are kept."""
        gray = to_gray8(image)
        full = frame.meta.frame_kind is FrameKind.FULL
        quality = measure_quality(gray) if full else None
        if full and self.cutter is not None:  # cut on the inference thread, by the model
            pending = self._guard(lambda: self.cutter.pending(gray, frame.meta.pixel_size_um))
            return TaskInputs([], [], quality=quality, pending=pending)
        objects = self._objects(gray, frame)
        crops = classifier_crops(image, objects, self.input_size, self.card.input.channels)
        views = self._views(frame, image, objects) if self.keep_crops else []
        return TaskInputs(crops, objects, quality=quality, views=views)

    @staticmethod
    def _views(frame: Frame, image: np.ndarray, objects: Sequence) -> list[Crop]:
        """Each object's crop; a whole ROI that came as PNG or JPEG is kept as it came."""
        meta = frame.meta
        if (
            meta.frame_kind is FrameKind.ROI
            and can_keep_as_sent(meta.content_type, image)
            and len(objects) == 1
        ):
            return [crop_as_sent(frame.payload, image)]
        return [encode_crop(obj.image) for obj in objects]

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray | FullFrameBatch | None:
        """Every object of every frame in one tensor; None when no frame has an object.
        With frames still to cut by the model: those frames beside the other frames' tensor."""
        crops = [crop for prepared in frames for crop in prepared.crops]
        pending = [p.pending for p in frames if p.pending is not None]
        if pending:
            tensor = batch_tensor(crops) if crops else None
            return FullFrameBatch(tensor, pending, self.input_size)
        return batch_tensor(crops) if crops else None

    def finish(
        self,
        frames: Sequence[PreparedFrame],
        outputs: PlanktonOutputs | CutOutputs | np.ndarray | None,
        infer_ms: float,
    ) -> list[TaskResult]:
        """Probabilities -> one ObjectRecord per object, frame by frame; each with its
        "most likely wrong" score when the card carries a ranking calibration. Frames the
        model cut get their objects, crops and segmentation quality here (the classifier's
        rows for them come after the other frames' rows)."""
        order = list(range(len(frames)))
        doubtful: set[int] = set()
        if isinstance(outputs, CutOutputs):
            doubtful = self._take_cuts(frames, outputs.cuts)
            order.sort(key=lambda i: frames[i].pending is not None)
            outputs = outputs.outputs
        predictions = self.interpret(outputs) if outputs is not None else []
        per_object_ms = infer_ms / max(1, len(predictions))
        answers_of, cursor = {}, 0
        for i in order:
            n = len(frames[i].objects)
            answers_of[i], cursor = predictions[cursor : cursor + n], cursor + n
        wrongness_of = poll_wrongness(
            self.ranking,
            [answers_of[i] for i in range(len(frames))],
            [p.frame.meta.frame_kind is FrameKind.FULL for p in frames],
        )
        results = []
        for i, prepared in enumerate(frames):
            answers, n = answers_of[i], len(prepared.objects)
            digests = [v.digest for v in prepared.views] if prepared.views else [None] * n
            wrongness = wrongness_of[i]
            if i in doubtful:  # a doubtful cut: its objects first in the review queue
                wrongness = [1.0] * n
            objects = tuple(
                ObjectRecord(
                    index=obj.index,
                    bbox=obj.bbox,
                    taxon=pred.taxon,
                    confidence=pred.confidence,
                    top_k=pred.top_k,
                    morph=obj.morph,
                    crop=digest,
                    wrongness=wrong,
                    ood=pred.ood,
                    ood_flagged=pred.ood_flagged,
                )
                for obj, pred, digest, wrong in zip(
                    prepared.objects, answers, digests, wrongness, strict=True
                )
            )
            results.append(TaskResult(per_object_ms * n, objects=objects))
        return results

    def _take_cuts(self, frames: Sequence[PreparedFrame], cuts: list[Cut]) -> set[int]:
        """Put each cut's objects, crops and score on its frame; return the positions of the
        frames whose segmentation quality is under ``review_below``."""
        pending = [i for i, p in enumerate(frames) if p.pending is not None]
        doubtful = set()
        for i, cut in zip(pending, cuts, strict=True):
            prepared = frames[i]
            prepared.objects = cut.objects
            prepared.views = [encode_crop(o.image) for o in cut.objects] if self.keep_crops else []
            if prepared.quality is not None:
                prepared.quality = replace(prepared.quality, segmentation=cut.score)
            if self.cutter is not None and self.cutter.needs_review(cut.score):
                doubtful.add(i)
        return doubtful

    def close(self) -> None:
        """Close the backend (and the segmentation model's)."""
        self.backend.close()
        if self.cutter is not None:
            self.cutter.close()

    def _objects(self, gray: np.ndarray, frame: Frame) -> list[SegmentedObject]:
        pixel_size = frame.meta.pixel_size_um
        if frame.meta.frame_kind is FrameKind.FULL:
            return self._guard(lambda: segment_full(gray, self.segment, pixel_size))
        return self._guard(lambda: [measure_roi(gray, self.segment, pixel_size)])

    @staticmethod
    def _guard(cut):
        """Run a cutting step; an OpenCV corner case becomes a FrameError (to the DLQ)."""
        try:
            return cut()
        except FrameError:
            raise
        except Exception as exc:  # an OpenCV corner case: the frame goes to the DLQ
            raise FrameError("segment", f"{type(exc).__name__}: {exc}") from exc

    def predict(self, tensor: np.ndarray) -> list[Prediction]:
        """Classify a batch tensor (N×1×S×S float32 0..255) of any N."""
        return self.interpret(self.infer(tensor)) if len(tensor) else []

    def infer(self, tensor: np.ndarray | FullFrameBatch) -> PlanktonOutputs | CutOutputs:
        """The backend alone (in chunks of ``max_batch``): class probabilities (N×C) and,
        with a detector, each object's OOD score from the ``features`` output. Frames still
        to cut are cut by the segmentation model first and their objects classified too."""
        if isinstance(tensor, FullFrameBatch):
            cuts = self.cutter.cut(tensor.pending)
            new = [crop for cut in cuts for crop in cut.crops]
            crops = np.concatenate([tensor.crops, batch_tensor(new)]) if new else tensor.crops
            return CutOutputs(self._classify(crops), cuts)
        return self._classify(tensor)

    def _classify(self, tensor: np.ndarray) -> PlanktonOutputs:
        chunks = run_in_chunks(self._run, tensor, self.max_batch)
        probs = (
            np.concatenate([c[0] for c in chunks]) if chunks else np.zeros((0, len(self.classes)))
        )
        if probs.shape != (len(tensor), len(self.classes)):
            msg = (
                f"model returned shape {probs.shape} for {len(tensor)} inputs; expected "
                f"({len(tensor)}, {len(self.classes)}) as its card says"
            )
            raise BackendError(msg)
        ood = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.float32)
        return PlanktonOutputs(probs, ood)

    def _run(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One backend call: probabilities and OOD scores (zeros without a detector)."""
        if self.ood is None or self._features_at is None:
            return self.backend.run(chunk), np.zeros(len(chunk), np.float32)
        outputs = self.backend.run_outputs(chunk)
        if len(outputs) <= max(self._features_at, self._stage3_at or 0):
            msg = f"model returned {len(outputs)} outputs; its card lists {self.card.outputs}"
            raise BackendError(msg)
        features = np.asarray(outputs[self._features_at], np.float32)
        if features.shape != (len(chunk), self.ood.dim):
            msg = (
                f"model features of shape {features.shape} for {len(chunk)} inputs do not fit "
                f"the OOD bank (dimension {self.ood.dim}); refit `seawatch train plankton-ood`"
            )
            raise BackendError(msg)
        if self._stage3_at is None:
            return outputs[0], self.ood.scores(features, outputs[0], chunk)
        return outputs[0], self.ood.scores(features, outputs[0], chunk, outputs[self._stage3_at])

    def interpret(self, outputs: PlanktonOutputs | np.ndarray) -> list[Prediction]:
        """Probabilities (N×C, or :meth:`infer`'s outputs with OOD scores) -> taxon,
        confidence, top-k and OOD score per row."""
        if isinstance(outputs, PlanktonOutputs):
            probs, scores = outputs
        else:
            probs, scores = outputs, None
        if self.ood is None:
            scores = None
        limit = self.ood.threshold if self.ood is not None else np.inf
        return predictions(probs, scores, self.classes, self.top_k, self.unknown_below, limit)


@functools.cache
def _say_no_ood(directory: str) -> None:
    """Log once per artifact that it is served without an OOD score."""
    log.warning(
        "plankton model %s has no out-of-distribution score (card field ood): unknown is "
        "decided by the softmax threshold alone; fit one with `seawatch train plankton-ood "
        "--model %s`",
        directory,
        directory,
    )


def _load(task, settings) -> PlanktonClassifier:
    """The head from ``tasks.plankton`` and the segmentation settings."""
    from seawatch.inference.artifact import open_artifact

    options = parse_options(PlanktonOptions, TASK, task.options)
    max_batch = task.batch(settings.inference.max_batch)
    artifact = open_artifact(
        TASK, task.model_dir, settings.inference, max_batch=max_batch, sample_inputs=sample_inputs
    )
    seg = settings.ingest.segmentation
    ood = load_ood(artifact.directory, artifact.card.ood)
    if ood is None:
        _say_no_ood(str(artifact.directory))
    params = SegmentParams(
        polarity=seg.polarity,
        min_esd_px=seg.min_esd_px,
        min_esd_um=seg.min_esd_um,
        threshold=seg.threshold,
        background_kernel=seg.background_kernel,
        pad_px=seg.pad_px,
        max_objects=seg.max_objects,
    )
    cutter = None
    if seg.method == "model":
        check_model_cut(artifact.card, artifact.directory)
        cutter = open_cutter(
            seg.model_dir,
            params,
            threads=settings.inference.threads,
            classifier_size=artifact.card.input.size,
            max_batch=max_batch,
            review_below=seg.review_below,
            windows=seg.windows,
            workers=settings.ingest.decode_threads,
        )
    return PlanktonClassifier(
        artifact.backend,
        artifact.card,
        max_batch=max_batch,
        top_k=options.top_k,
        segment=params,
        keep_crops=settings.storage.local.keeps_crops,
        ood=ood,
        cutter=cutter,
    )


PLUGIN = TaskPlugin(
    name=TASK,
    load=_load,
    sample_inputs=sample_inputs,
    model_input=model_input,
    validate=validate,
    description="plankton classifier: taxon, calibrated confidence, top-k, morphometrics",
)

__all__ = ["PLUGIN", "PlanktonClassifier", "PlanktonOptions", "PlanktonOutputs", "Prediction"]
