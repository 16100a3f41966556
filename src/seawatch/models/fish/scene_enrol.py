"""Detector-style gallery views: each known fish cut out of tank scenes the daemon's way.

The committed gallery holds clean single-fish renders of each known individual, while a
whole-frame camera's sightings are crops the detector cut from tank scenes: other light,
noise, box slack, a neighbour's fin, mirrored right-facing fish (issue 28). For each known
(not provisional) individual of the generator (ids ``zf-<seed>-<index>``,
:func:`~seawatch.models.fish.synthetic.make_individual`), :func:`scene_views` draws
``scenes`` tank frames (:mod:`seawatch.models.fish.tank_scene`'s wall, paste and camera
finish): the fish at a stream sighting's size (0.7-1.4 x 160 x 64 pixels), facing right half
the time, with 0-2 other gallery fish drawn before or after it (which may cover part of it).
Each frame goes through the head's own whole-frame ``prepare`` (detector, outline gate,
orientation, model input); a detection is kept when its box matches the intended fish's
drawn outline (IoU >= ``MIN_IOU``, one to one) and its view is good (not doubted by the gate,
quality at least the decider's ``min_quality``) and, with ``min_own``, its embedding's best
cosine to the fish's enrolled views is at least that (a crop that resembles none of them,
a neighbour or occluder over most of it, would name other fish: issue 28, the builder's
experiment). The first ``views`` kept per individual are embedded;
:func:`enrol_scene_views` appends them to the gallery.

Deterministic in ``seed`` (each individual draws from ``default_rng([seed, position])``).
numpy + OpenCV + ONNX Runtime (through the head's backend).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.contracts.preprocess import planar_batch
from seawatch.contracts.task import PreparedFrame
from seawatch.models.fish.head import FishIdentifier
from seawatch.models.fish.open_set import OpenSetDecider
from seawatch.models.fish.sighting_inputs import place
from seawatch.models.fish.synthetic import Individual, _fish_layer, make_individual
from seawatch.models.fish.tank_scene import FRAME_H, FRAME_W, _finish, _paste, _wall, match_boxes

MIN_IOU = 0.5  # a detection is the intended fish's when its box overlaps the drawn outline so
MIN_QUALITY = OpenSetDecider.__init__.__kwdefaults__["min_quality"]  # the decider's own


@dataclass(frozen=True, slots=True)
class SceneViews:
    """One individual's detector-style views: model inputs (N x H x W x 3 uint8), the boxes
    they were cut at, and how many scenes were drawn for them."""

    individual: str
    inputs: np.ndarray
    boxes: tuple[tuple[int, int, int, int], ...]
    scenes: int


def generator_individual(name: str) -> Individual | None:
    """The generator's individual behind ``zf-<seed>-<index>`` (None for any other id)."""
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "zf" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return make_individual(int(parts[2]), int(parts[1]))


def draw_scene(
    target: Individual, others: list[Individual], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """A tank frame (H x W x 3 uint8 BGR) holding ``target`` and 0-2 of ``others``, and the
    target's drawn outline box (None when it fell outside the frame)."""
    image = _wall(rng, FRAME_H, FRAME_W)
    cover = np.zeros((FRAME_H, FRAME_W), np.int16)
    n_others = int(rng.integers(0, 3)) if others else 0
    cast = [others[int(rng.integers(len(others)))] for _ in range(n_others)]
    cast.insert(int(rng.integers(0, n_others + 1)), target)
    target_box = None
    for k, ind in enumerate(cast):
        scale = float(rng.uniform(0.7, 1.4))
        fw, fh = round(160 * scale), round(64 * scale)
        premultiplied, alpha, _ = _fish_layer(ind, rng, fh, fw)
        if rng.random() < 0.5:  # facing right: the head must mirror it back
            premultiplied, alpha = premultiplied[:, ::-1], alpha[:, ::-1]
        x0 = int(rng.uniform(0, FRAME_W - fw))
        y0 = int(rng.uniform(0, FRAME_H - fh))
        box = _paste(image, cover, premultiplied, alpha, x0, y0, k + 1)
        if ind is target:
            target_box = box
    return _finish(image, rng), target_box


def scene_views(
    head: FishIdentifier,
    individual: str,
    others: list[Individual],
    rng: np.random.Generator,
    *,
    views: int,
    scenes: int,
    min_own: float | None = None,
) -> SceneViews:
    """Up to ``views`` good detector crops of ``individual`` from at most ``scenes`` tank
    frames, cut by ``head`` (a whole-frame :class:`FishIdentifier`); ``min_own``: only crops
    whose best cosine to the individual's views in ``head.gallery`` reaches it."""
    if not head.whole_frames:
        raise ValueError("scene_views needs a whole-frame head (whole_frames=True)")
    target = generator_individual(individual)
    if target is None:
        msg = f"{individual!r} is not a generator individual (zf-<seed>-<index>)"
        raise ValueError(msg)
    inputs: list[np.ndarray] = []
    boxes: list[tuple[int, int, int, int]] = []
    own = head.gallery.views(individual)[0] if min_own is not None else None
    drawn = 0
    while drawn < scenes and len(inputs) < views:
        image, box = draw_scene(target, [o for o in others if o.name != individual], rng)
        drawn += 1
        if box is None:
            continue
        meta = FrameMeta("enrol-scenes", "fish", drawn, FrameKind.FULL, "image/png")
        frame = Frame(meta, SourceRef("enrol-scenes", 0, drawn), b"", 0)
        prepared = PreparedFrame.of(frame, head.prepare(frame, image), 0.0)
        found = [o.bbox for o in prepared.objects]
        for _, j in match_boxes([box], found, MIN_IOU):
            if place(prepared, j, MIN_QUALITY).quality < MIN_QUALITY:
                continue
            if own is not None and min_own is not None:
                embedding = head.embed(planar_batch([prepared.crops[j]]))[0]
                if float((own @ embedding).max()) < min_own:
                    continue
            inputs.append(prepared.crops[j])
            boxes.append(found[j])
    shape = (0, head.height, head.width, 3)
    stacked = np.stack(inputs[:views]) if inputs else np.zeros(shape, np.uint8)
    return SceneViews(individual, stacked, tuple(boxes[:views]), drawn)


def enrol_scene_views(
    head: FishIdentifier,
    *,
    views: int,
    seed: int,
    scenes: int | None = None,
    min_own: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Append up to ``views`` detector-style views to every known generator individual of
    ``head.gallery`` (in place; provisional ids and other names are left as they are), from
    at most ``scenes`` tank frames each (default ``3 * views``), each view at least ``min_own``
    like the fish's enrolled ones when given (:func:`scene_views`); ``progress`` is called with
    each individual's id. Returns the views added per individual."""
    if views < 1:
        raise ValueError(f"views must be at least 1, got {views}")
    scenes = 3 * views if scenes is None else scenes
    if scenes < 1:
        raise ValueError(f"scenes must be at least 1, got {scenes}")
    gallery = head.gallery
    known = [e.id for e in gallery.list() if not e.provisional and e.merged_into is None]
    cast = [ind for i in known if (ind := generator_individual(i)) is not None]
    added: dict[str, int] = {}
    for position, individual in enumerate(gallery.ids):
        if individual not in known or generator_individual(individual) is None:
            continue
        rng = np.random.default_rng([seed, position, 28])
        found = scene_views(
            head, individual, cast, rng, views=views, scenes=scenes, min_own=min_own
        )
        if len(found.inputs):
            gallery.enrol(individual, head.embed(planar_batch(list(found.inputs))))
        added[individual] = len(found.inputs)
        if progress is not None:
            progress(individual)
    return added


__all__ = [
    "MIN_IOU",
    "MIN_QUALITY",
    "SceneViews",
    "draw_scene",
    "enrol_scene_views",
    "generator_individual",
    "scene_views",
]
