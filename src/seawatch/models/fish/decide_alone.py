"""Each sighting decided alone against the gallery: the fish head's open-set rule without
tracklets (``tasks.fish.options.tracklets`` off, or no sources and places given).

numpy only. A sighting is the individual its best score names when that reaches the match
threshold, else (with ``enrol_new``) a new provisional individual, else ``unknown``; a
provisional individual keeps each matched sighting as a further view, up to
:data:`PROVISIONAL_VIEWS`. :meth:`~seawatch.models.fish.head.FishIdentifier.decide` says more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from seawatch.contracts.records import UNKNOWN
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.open_set import Sighting

PROVISIONAL_VIEWS = 8  # views a provisional individual gathers from its matched sightings


def decide_alone(
    gallery: Gallery,
    embeddings: np.ndarray,
    threshold: Callable[[], float],
    *,
    enrol_new: bool,
    sources: Sequence[SightingSource] | None = None,
) -> list[Sighting]:
    """One answer per unit embedding (N x D, N >= 1), in order, each decided alone at
    ``threshold()`` (asked per sighting: it may follow the gallery's size as fish are
    enrolled); a fish enrolled by an earlier embedding is matched by a later one."""
    matches = gallery.match(embeddings)  # against the gallery before this batch
    fresh: list[tuple[str, np.ndarray]] = []  # views this batch enrolled (new or added)
    sightings = []
    for i, match in enumerate(matches):
        source = sources[i] if sources is not None else None
        if source is not None and (answer := gallery.seen(source.uid)) is not None:
            entry = gallery.entry(answer.individual)
            again = (answer.individual, answer.similarity, answer.new_individual)
            sightings.append(Sighting(*again, entry.provisional))
            continue
        best, score = match.individual, match.similarity
        for new_id, view in fresh:
            similarity = float(embeddings[i] @ view)
            if similarity > score:
                best, score = new_id, similarity
        score = round(score, 6)
        uid = source.uid if source is not None else ""
        if best is not None and score >= threshold():
            best = gallery.resolve(best)
            entry = gallery.entry(best)
            kept = entry.provisional and entry.n_embeddings < PROVISIONAL_VIEWS
            if kept:
                gallery.enrol(best, embeddings[i], provisional=True, source=uid, similarity=score)
                fresh.append((best, embeddings[i]))
            sightings.append(Sighting(best, score, False, entry.provisional, kept))
        elif enrol_new:
            entry = gallery.enrol_new(
                embeddings[i],
                source=uid or None,
                similarity=score,
                first_seen_ns=source.captured_at_ns if source is not None else 0,
            )
            fresh.append((entry.id, embeddings[i]))
            sightings.append(Sighting(entry.id, score, True, True, True))
        else:
            sightings.append(Sighting(UNKNOWN, score, False, False))
    return sightings


__all__ = ["PROVISIONAL_VIEWS", "decide_alone"]
