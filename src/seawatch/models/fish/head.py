"""The fish task head and plug-in: crops -> embeddings -> known individual or a new
provisional one.

numpy + OpenCV only. :func:`prepare_fish` is the one preprocessing function, used by
training, evaluation and the daemon alike: any decoded crop (gray, BGR or BGRA; 8 or 16 bit)
becomes float32 3 x H x W RGB 0..255 at the model's input size (:func:`fit_crop`). The
graph normalises and returns L2-normalised embeddings.

:class:`FishIdentifier` is open-set: a query whose best gallery score reaches the card's
``match_similarity`` threshold (calibrated for a target false-match rate; with
``by_gallery_size``, the card's threshold for the gallery's present size) is that
individual; below it the fish is unknown and, with ``enrol_new``, enrolled at once under a
new provisional id, so its next sighting, even later in the same batch, matches it. A
provisional individual keeps each matched sighting as a further view, up to
:data:`PROVISIONAL_VIEWS` (known individuals were enrolled with several views; one view of a
new fish is matched by only about 58 % of its later sightings at the threshold, and each miss
would enrol the same fish again). Without tracklets each sighting is decided alone
(:mod:`seawatch.models.fish.decide_alone`).

A new fish's id derives from the frame that enrolled it (see
:mod:`seawatch.models.fish.gallery`), so a replayed frame gets the answer it got before. With
``shared_gallery`` (the default) the gallery is one for every worker of the consumer group, on
every host, kept in a compacted Kafka topic (:mod:`seawatch.models.fish.shared_gallery`):
read before each batch is decided, appended to (and flushed) before its records are stored.
Without it, the working copy ``.npz`` is saved after each enrolment (one process only).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.crops import (
    MAX_CROP_SIDE,
    Crop,
    can_keep_as_sent,
    crop_as_sent,
    encode_crop,
)
from seawatch.contracts.errors import BackendError, ConfigError, FrameError
from seawatch.contracts.evidence import thumbnail
from seawatch.contracts.frames import Frame
from seawatch.contracts.preprocess import planar_batch
from seawatch.contracts.records import FishRecord
from seawatch.contracts.task import (
    PreparedFrame,
    TaskInputs,
    TaskPlugin,
    TaskResult,
    parse_options,
)
from seawatch.inference.backend import Backend
from seawatch.inference.batching import run_in_chunks
from seawatch.models.fish.decide_alone import PROVISIONAL_VIEWS, decide_alone
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.open_set import (
    WHOLE_FRAME_ALONE_MARGIN,
    WHOLE_FRAME_ALONE_NEW_MARGIN,
    WHOLE_FRAME_INHERIT_AGREE,
    OpenSetDecider,
    Sighting,
)
from seawatch.models.fish.options import FishOptions, build_detector, build_shared_gallery
from seawatch.models.fish.preprocess import (
    fish_input8,
    fit_crop,
    model_input,
    prepare_fish,
    sample_inputs,
    to_rgb8,
)
from seawatch.models.fish.rerank import QueryExpansion, expansion_threshold_key
from seawatch.models.fish.shared_gallery import SharedGallery
from seawatch.models.fish.sighting_inputs import kept_views, sighting_places, sighting_sources
from seawatch.models.fish.size_thresholds import SizeThresholds
from seawatch.models.fish.tracklets import (
    LINK_SIMILARITY,
    WHOLE_FRAME_LINK_SIMILARITY,
    Place,
    Tracklets,
)
from seawatch.models.fish.whole_frames import Detector, whole_frame_inputs

TASK = "fish"


class FishIdentifier:
    """Embeds fish crops with a backend and identifies them against a gallery (open set).

    As a task head, ``enrol_new`` says whether an unknown fish is enrolled. Enrolments
    survive a crash: with ``shared`` they are in the shared log (flushed) before the batch's
    records are stored; else the gallery is saved to ``gallery_path`` (when set) then.
    """

    name = TASK

    def __init__(
        self,
        backend: Backend,
        card: ModelCard,
        gallery: Gallery,
        *,
        max_batch: int,
        enrol_new: bool = True,
        gallery_path: Path | None = None,
        keep_views: bool = False,
        shared: SharedGallery | None = None,
        tracklets: bool = False,
        whole_frames: bool = False,
        detector: Detector | None = None,
        by_gallery_size: bool = False,
        query_expansion: bool = False,
    ) -> None:
        if max_batch < 1:
            msg = f"max_batch must be at least 1, got {max_batch}"
            raise ValueError(msg)
        if card.task != "fish":
            msg = f"FishIdentifier needs a fish model, got a {card.task!r} card ({card.name})"
            raise ConfigError(msg)
        if "match_similarity" not in card.thresholds:
            msg = f"card of {card.name} has no thresholds.match_similarity; retrain the model"
            raise ConfigError(msg)
        dim = card.metrics.get("embedding_dim")
        if dim is not None and gallery.dim is not None and gallery.dim != dim:
            msg = (
                f"gallery holds {gallery.dim}-d embeddings but model {card.name} makes {dim}-d "
                "ones; it was built with another model: re-enrol with this one"
            )
            raise ConfigError(msg)
        self.backend = backend
        self.card = card
        self.gallery = gallery
        self.max_batch = max_batch
        key = "match_similarity"
        if query_expansion:  # scores re-ranked by query expansion, at their own threshold
            key = expansion_threshold_key(card)
            gallery.expansion = QueryExpansion()
        self.threshold = float(card.thresholds[key])
        self.height, self.width = card.input.height, card.input.width
        self.enrol_new = enrol_new
        self.gallery_path = gallery_path
        self.keep_views = keep_views  # encode each sighting's view for the review station
        self.shared = shared
        self.whole_frames = whole_frames  # a frame holds several fish (frame_detect)
        self.detector = detector  # None: the classical detector (frame_detect.detect_fish)
        # tracklets: sightings decided as groups (issue 28); None: each sighting alone
        # whole frames link tracklets more strictly (tracklets.py, open_set.py: issue 28)
        link = WHOLE_FRAME_LINK_SIMILARITY if whole_frames else LINK_SIMILARITY
        # the threshold for the gallery's size (size_thresholds.py); None: the single one
        self.size_thresholds = SizeThresholds.from_card(card, key) if by_gallery_size else None
        self.decider = (
            OpenSetDecider(
                gallery,
                self.threshold,
                tracklets=Tracklets(link_similarity=link),
                inherit_agree=WHOLE_FRAME_INHERIT_AGREE if whole_frames else 0.0,
                alone_margin=WHOLE_FRAME_ALONE_MARGIN if whole_frames else 0.0,
                alone_new_margin=WHOLE_FRAME_ALONE_NEW_MARGIN if whole_frames else 0.0,
                size_thresholds=self.size_thresholds,
            )
            if tracklets
            else None
        )

    def match_threshold(self) -> float:
        """The threshold a sighting is matched at now: the card's ``match_similarity``, or
        with ``by_gallery_size`` the card's threshold for the gallery's present size."""
        if self.size_thresholds is None:
            return self.threshold
        return self.size_thresholds.at(len(self.gallery))

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        """One fish crop: its uint8 model input (and its encoded view, when views are kept);
        with ``whole_frames`` one per fish found in the frame (none when there is none)."""
        try:
            if self.whole_frames:
                if self.detector is not None:
                    return whole_frame_inputs(
                        image, self.input8, keep_views=self.keep_views, detect=self.detector
                    )
                return whole_frame_inputs(image, self.input8, keep_views=self.keep_views)
            model_input = self.input8(image)
        except ValueError as exc:
            raise FrameError("prepare", f"{TASK} input: {exc}") from exc
        views = [self._view(frame, image)] if self.keep_views else []
        return TaskInputs([model_input], views=views)

    @staticmethod
    def _view(frame: Frame, image: np.ndarray) -> Crop:
        """The sighting's view: the frame as the camera sent it when it can be (no PNG
        encode: 0.6 ms, 39 % of a fish frame's CPU), else shrunk and encoded as PNG."""
        if can_keep_as_sent(frame.meta.content_type, image):
            return crop_as_sent(frame.payload, image)
        return encode_crop(thumbnail(image, MAX_CROP_SIDE))

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray | None:
        """The batch's crops as one float32 N x 3 x H x W tensor (None: no fish at all)."""
        crops = [crop for prepared in frames for crop in prepared.crops]
        return planar_batch(crops) if crops else None

    def finish(
        self, frames: Sequence[PreparedFrame], outputs: np.ndarray, infer_ms: float
    ) -> list[TaskResult]:
        """Embeddings -> one sighting per crop (enrolling unknown fish when ``enrol_new``);
        enrolments are made durable (shared log or file) before the records are stored."""
        owners = [i for i, p in enumerate(frames) for _ in p.crops]  # crop -> its frame
        sources = sighting_sources(frames)
        if self.shared is not None:
            self.shared.sync()  # what the other workers enrolled and merged since
        embeddings = self.normalise(outputs) if outputs is not None else np.zeros((0, 1))
        places = (
            sighting_places(frames, self.decider.min_quality) if self.decider is not None else None
        )
        merged = len(self.decider.merges) if self.decider is not None else 0
        sightings = self.decide(
            embeddings, enrol_new=self.enrol_new, sources=sources, places=places
        )
        if self.shared is not None:
            self.shared.publish(kept_views(sightings, sources))
            for merge in self.decider.merges[merged:] if self.decider is not None else []:
                self.shared.publish_merge(merge.loser, merge.survivor, merge.similarity)
        elif self.gallery_path is not None and any(s.new_individual for s in sightings):
            self.gallery.save(self.gallery_path)
        per_frame: list[list[FishRecord]] = [[] for _ in frames]
        for s, i in zip(sightings, owners, strict=True):
            prepared, k = frames[i], len(per_frame[i])
            per_frame[i].append(
                FishRecord(
                    individual=s.individual,
                    similarity=round(s.similarity, 6),
                    new_individual=s.new_individual,
                    provisional=s.provisional,
                    view=prepared.views[k].digest if len(prepared.views) > k else None,
                    bbox=prepared.objects[k].bbox if len(prepared.objects) > k else None,
                )
            )
        per_frame_ms = infer_ms / max(1, len(frames))
        return [
            TaskResult(
                per_frame_ms,
                fish=records[0] if records else None,
                sightings=tuple(records) if self.whole_frames else (),
            )
            for records in per_frame
        ]

    def close(self) -> None:
        """Close the backend, and the shared gallery (exporting it to its file)."""
        try:
            if self.shared is not None:
                self.shared.close()
        finally:
            self.backend.close()

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """A decoded crop -> float32 3 x H x W RGB 0..255 (see :func:`prepare_fish`)."""
        return prepare_fish(image, self.height, self.width)

    def input8(self, image: np.ndarray) -> np.ndarray:
        """A decoded crop -> H x W x 3 uint8 RGB; the router stacks a batch of them with
        :func:`~seawatch.contracts.preprocess.planar_batch`."""
        return fish_input8(image, self.height, self.width)

    def embed(self, tensor: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N x D) of a prepared batch, run in chunks of max_batch."""
        return self.normalise(self.infer(tensor))

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """The backend alone (in chunks of ``max_batch``): the model's embeddings, N x D."""
        n = len(tensor)
        chunks = run_in_chunks(self.backend.run, tensor, self.max_batch)
        if not chunks:
            return np.zeros((0, self.gallery.dim or 0), np.float32)
        out = np.concatenate(chunks).astype(np.float32, copy=False)
        if out.ndim != 2 or len(out) != n or out.shape[1] < 1:
            msg = f"model returned shape {out.shape} for {n} inputs; expected ({n}, D) embeddings"
            raise BackendError(msg)
        return out

    @staticmethod
    def normalise(out: np.ndarray) -> np.ndarray:
        """Unit-length rows. The graph normalises; renormalising keeps cosines exact if a
        backend (an FP16 engine, say) drifts a little from unit norm."""
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def identify(self, tensor: np.ndarray, *, enrol_new: bool = True) -> list[Sighting]:
        """Identify each crop of a prepared batch, enrolling unknown fish when ``enrol_new``
        (see :meth:`decide`)."""
        return self.decide(self.embed(tensor), enrol_new=enrol_new)

    def decide(
        self,
        embeddings: np.ndarray,
        *,
        enrol_new: bool = True,
        sources: Sequence[SightingSource] | None = None,
        places: Sequence[Place] | None = None,
    ) -> list[Sighting]:
        """Match unit embeddings (N x D) against the gallery, enrolling unknown fish when
        ``enrol_new``. With tracklets (and ``sources`` and ``places`` given) the
        :class:`~seawatch.models.fish.open_set.OpenSetDecider` decides; else each alone:

        Crops are decided in order, so a fish enrolled by an earlier crop of this batch is
        matched by a later one. A new individual's similarity is the best score it missed;
        its id derives from its ``sources`` entry (the frame), else from its embedding.
        A sighting whose view the gallery already holds (a replayed frame) gets the answer
        it got then. A match to a merged id is reported under its survivor. Below threshold
        without ``enrol_new`` the individual is ``unknown``.
        """
        if not len(embeddings):
            return []
        if self.decider is not None and enrol_new and sources is not None and places is not None:
            return self.decider.decide(embeddings, sources, places)
        return decide_alone(
            self.gallery, embeddings, self.match_threshold, enrol_new=enrol_new, sources=sources
        )


def _load(task, settings) -> FishIdentifier:
    """The head from ``tasks.fish``, matching against the daemon's working gallery."""
    from seawatch.inference.artifact import open_artifact
    from seawatch.models.fish.gallery import working_gallery

    options = parse_options(FishOptions, TASK, task.options)
    max_batch = task.batch(settings.inference.max_batch)
    artifact = open_artifact(
        TASK, task.model_dir, settings.inference, max_batch=max_batch, sample_inputs=sample_inputs
    )
    model_gallery = artifact.directory / artifact.card.files.get("gallery", "")
    path = working_gallery(settings.storage.local.fish_gallery_path, model_gallery)
    gallery = Gallery.load(path)
    shared = None
    if options.shared_gallery:
        shared = build_shared_gallery(gallery, options, artifact.card, settings, path)
    return FishIdentifier(
        artifact.backend,
        artifact.card,
        gallery,
        max_batch=max_batch,
        enrol_new=options.enrol_new,
        gallery_path=path,
        keep_views=settings.storage.local.keeps_crops,
        shared=shared,
        tracklets=options.tracklets,
        whole_frames=options.whole_frames,
        detector=build_detector(options),
        by_gallery_size=options.threshold_by_gallery_size,
        query_expansion=options.query_expansion,
    )


PLUGIN = TaskPlugin(
    name=TASK,
    load=_load,
    sample_inputs=sample_inputs,
    model_input=model_input,
    description="fish re-identification: individual or new id, similarity",
)

__all__ = [
    "PLUGIN",
    "PROVISIONAL_VIEWS",
    "FishIdentifier",
    "Sighting",
    "fish_input8",
    "fit_crop",
    "prepare_fish",
    "to_rgb8",
]
