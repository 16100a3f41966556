"""What the fish head hands the open-set decider for each crop of a batch: its source (the
sighting's id, time and frame) and its place (camera, time, box and view quality).

numpy + OpenCV only (through :mod:`seawatch.models.fish.quality`).
"""

from __future__ import annotations

from collections.abc import Sequence

from seawatch.contracts.task import PreparedFrame
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.open_set import Sighting
from seawatch.models.fish.quality import view_quality
from seawatch.models.fish.shared_gallery import Kept
from seawatch.models.fish.tracklets import Place


def sighting_sources(frames: Sequence[PreparedFrame]) -> list[SightingSource]:
    """One source per crop of the batch, in order."""
    return [
        SightingSource(sighting_uid(p, k), p.frame.meta.captured_at_ns, str(p.frame.ref))
        for p in frames
        for k in range(len(p.crops))
    ]


def sighting_places(frames: Sequence[PreparedFrame], min_quality: float) -> list[Place]:
    """One place per crop of the batch, in order; a view's quality is measured only as far
    as deciding that it is under ``min_quality`` needs (see :func:`place`)."""
    return [place(p, k, min_quality) for p in frames for k in range(len(p.crops))]


def place(prepared: PreparedFrame, k: int = 0, min_quality: float = 0.0) -> Place:
    """Where a frame's ``k``-th fish was seen (its camera, time and, in a whole frame, box;
    a crop sent alone has none; a detection's may hold two fish: ``detected``) and how
    usable its view is: 0 when its detector doubts it
    (:mod:`.outline_gate`); a view under ``min_quality`` is not tested for occlusion (poor
    either way)."""
    meta = prepared.frame.meta
    found = prepared.objects[k] if len(prepared.objects) > k else None
    poor = found is not None and found.poor
    quality = 0.0 if poor else view_quality(prepared.crops[k], floor=min_quality)
    box = found.bbox if found is not None else None
    return Place(meta.instrument, meta.captured_at_ns, box, quality, detected=found is not None)


def sighting_uid(prepared: PreparedFrame, k: int) -> str:
    """A sighting's source id: its frame's uid, then ``/k`` for a whole frame's later fish
    (a new fish's id derives from it, so each fish of a frame gets its own)."""
    uid = prepared.frame.meta.uid
    return uid if k == 0 else f"{uid}/{k}"


def kept_views(sightings: Sequence[Sighting], sources: Sequence[SightingSource]) -> list[Kept]:
    """The views a batch's decisions added to the gallery, as the shared log takes them (an
    enrolment first, then its other views; a tracklet adds earlier sightings' views too)."""
    kept: list[Kept] = []
    for s, source in zip(sightings, sources, strict=True):
        if s.kept:
            kept += [(s.individual, s.new_individual and k == 0, v) for k, v in enumerate(s.kept)]
        elif s.kept_view:
            kept.append((s.individual, s.new_individual, source))
    return kept


__all__ = ["kept_views", "place", "sighting_places", "sighting_sources", "sighting_uid"]
