"""The fish task head and plug-in: crops -> embeddings -> known individual or a new
provisional one.

numpy + OpenCV only. :func:`prepare_fish` is the one preprocessing function, used by
training, evaluation and the daemon alike: any decoded crop (gray, BGR or BGRA; 8 or 16 bit)
becomes float32 3 x H x W RGB 0..255 at the model's input size (:func:`fit_crop`). The
graph normalises and returns L2-normalised embeddings.

:class:`FishIdentifier` is open-set: a query whose best gallery score reaches the card's
``match_similarity`` threshold (calibrated for a target false-match rate) is that
individual; below it the fish is unknown and, with ``enrol_new``, enrolled at once under a
new provisional id, so its next sighting, even later in the same batch, matches it. A
provisional individual keeps each matched sighting as a further view, up to
:data:`PROVISIONAL_VIEWS` (known individuals were enrolled with several views; one view of a
new fish is matched by only about 58 % of its later sightings at the threshold, and each miss
would enrol the same fish again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

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
from seawatch.contracts.preprocess import planar_batch, planar_float32
from seawatch.contracts.records import UNKNOWN, FishRecord
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
from seawatch.models.fish.gallery import Gallery

TASK = "fish"
PROVISIONAL_VIEWS = 8  # views a provisional individual gathers from its matched sightings


@dataclass(frozen=True, slots=True)
class Sighting:
    """The identifier's answer for one fish crop."""

    individual: str
    similarity: float  # best gallery score (cosine; -1.0 for an empty gallery)
    new_individual: bool  # True when this sighting enrolled a new id
    provisional: bool  # the matched/enrolled individual is provisional


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """A decoded image (H x W gray, H x W x 3 BGR, H x W x 4 BGRA; uint8/uint16) -> RGB uint8.

    16-bit data is scaled by the smallest power of two that holds its maximum (as for
    plankton), so 10- to 14-bit cameras in 16-bit containers keep their contrast.
    """
    if image.dtype == np.uint16:
        bits = max(8, int(image.max()).bit_length())
        image = (image >> (bits - 8)).astype(np.uint8)
    elif image.dtype != np.uint8:
        msg = f"image dtype {image.dtype} is not supported; expected uint8 or uint16"
        raise ValueError(msg)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        return cv2.cvtColor(image, code)
    msg = f"image shape {image.shape} is not H x W, H x W x 3 or H x W x 4"
    raise ValueError(msg)


def fit_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a crop to ``height`` x ``width`` (area interpolation when shrinking).

    The aspect is not kept, as usual for re-ID inputs: a detector's tight crop then always
    spans the fish from snout (left) to tail tip (right), which the network's positional
    head relies on; only the body depth stretches a little when the box is looser or tighter.
    """
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        msg = f"image of shape {image.shape} is empty"
        raise ValueError(msg)
    if (h, w) == (height, width):
        return image
    shrink = h > height or w > width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def fish_input8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A decoded fish crop -> ``height`` x ``width`` x 3 uint8 RGB: the model input before
    its float conversion (:func:`prepare_fish`, or :func:`planar_batch` for a batch)."""
    return fit_crop(to_rgb8(image), height, width)


def prepare_fish(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A decoded fish crop -> the model input: float32 3 x ``height`` x ``width`` RGB 0..255."""
    return planar_float32(fish_input8(image, height, width))


class FishIdentifier:
    """Embeds fish crops with a backend and identifies them against a gallery (open set).

    As a task head, ``enrol_new`` says whether an unknown fish is enrolled, and
    ``gallery_path`` (when set) is where the gallery is saved after each enrolment, before
    the batch's records are stored, so enrolments survive a crash.
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
        self.threshold = float(card.thresholds["match_similarity"])
        self.height, self.width = card.input.height, card.input.width
        self.enrol_new = enrol_new
        self.gallery_path = gallery_path
        self.keep_views = keep_views  # encode each sighting's view for the review station

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        """One fish crop: its uint8 model input (and its encoded view, when views are kept)."""
        try:
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

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray:
        """The batch's crops as one float32 N x 3 x H x W tensor."""
        return planar_batch([prepared.crops[0] for prepared in frames])

    def finish(
        self, frames: Sequence[PreparedFrame], outputs: np.ndarray, infer_ms: float
    ) -> list[TaskResult]:
        """Embeddings -> one sighting per crop (enrolling unknown fish when ``enrol_new``);
        the gallery is saved before the records are stored."""
        sightings = self.decide(self.normalise(outputs), enrol_new=self.enrol_new)
        if self.gallery_path is not None and any(s.new_individual for s in sightings):
            self.gallery.save(self.gallery_path)
        per_frame_ms = infer_ms / max(1, len(frames))
        return [
            TaskResult(
                per_frame_ms,
                fish=FishRecord(
                    individual=s.individual,
                    similarity=round(s.similarity, 6),
                    new_individual=s.new_individual,
                    provisional=s.provisional,
                    view=prepared.views[0].digest if prepared.views else None,
                ),
            )
            for s, prepared in zip(sightings, frames, strict=True)
        ]

    def close(self) -> None:
        """Close the backend."""
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

    def decide(self, embeddings: np.ndarray, *, enrol_new: bool = True) -> list[Sighting]:
        """Match unit embeddings (N x D) against the gallery, enrolling unknown fish when
        ``enrol_new``.

        Crops are decided in order, so a fish enrolled by an earlier crop of this batch is
        matched by a later one. A new individual's similarity is the best score it missed.
        Below threshold without ``enrol_new`` the individual is ``unknown``.
        """
        if not len(embeddings):
            return []
        matches = self.gallery.match(embeddings)  # against the gallery before this batch
        fresh: list[tuple[str, np.ndarray]] = []  # views this batch enrolled (new or added)
        sightings = []
        for i, match in enumerate(matches):
            best, score = match.individual, match.similarity
            for new_id, view in fresh:
                similarity = float(embeddings[i] @ view)
                if similarity > score:
                    best, score = new_id, similarity
            if best is not None and score >= self.threshold:
                entry = self.gallery.entry(best)
                if entry.provisional and entry.n_embeddings < PROVISIONAL_VIEWS:
                    self.gallery.enrol(best, embeddings[i], provisional=True)
                    fresh.append((best, embeddings[i]))
                sightings.append(Sighting(best, round(score, 6), False, entry.provisional))
            elif enrol_new:
                entry = self.gallery.enrol_new(embeddings[i])
                fresh.append((entry.id, embeddings[i]))
                sightings.append(Sighting(entry.id, round(score, 6), True, True))
            else:
                sightings.append(Sighting(UNKNOWN, round(score, 6), False, False))
        return sightings


class FishOptions(TaskOptions):
    """``tasks.fish.options``."""

    enrol_new: bool = Field(
        True, description="a fish below the match threshold enrols a new provisional id"
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
    return FishIdentifier(
        artifact.backend,
        artifact.card,
        Gallery.load(path),
        max_batch=max_batch,
        enrol_new=options.enrol_new,
        gallery_path=path,
        keep_views=settings.storage.local.keeps_crops,
    )


def sample_inputs(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """``n`` model inputs like live ones: synthetic side views of up to 16 individuals."""
    from seawatch.models.fish.synthetic import make_individuals, render_fish

    rng = np.random.default_rng(seed)
    fish = make_individuals(max(1, min(n, 16)), seed=seed)
    height, width = card.input.height, card.input.width
    return np.stack(
        [prepare_fish(render_fish(fish[i % len(fish)], rng), height, width) for i in range(n)]
    )


def model_input(card: ModelCard, image: np.ndarray) -> np.ndarray:
    """One decoded crop -> one model input (3 x H x W float32 RGB)."""
    return prepare_fish(image, card.input.height, card.input.width)


PLUGIN = TaskPlugin(
    name=TASK,
    load=_load,
    sample_inputs=sample_inputs,
    model_input=model_input,
    description="fish re-identification: individual or new id, similarity",
)

__all__ = [
    "PLUGIN",
    "FishIdentifier",
    "Sighting",
    "fish_input8",
    "fit_crop",
    "prepare_fish",
    "to_rgb8",
]
