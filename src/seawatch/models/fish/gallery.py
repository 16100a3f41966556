"""The gallery of known fish: enrolled embeddings per individual, matching, merges.

numpy only. An individual holds one or more L2-normalised embeddings (views of that fish).
A query's score for an individual is the **maximum** cosine similarity over that
individual's stored views (nearest view: a new pose only needs to resemble one enrolled
view). :meth:`Gallery.match` returns the best individual and its score per query; the open-set
decision (match or new fish) belongs to the caller, who holds the calibrated threshold.

**Ids without coordination.** A new fish's id is derived from the sighting that enrolled it
(:func:`new_id`: ``fish-new-`` + the first 12 hex digits of the SHA-256 of the frame's uid),
not from a counter: two workers, processes or hosts can never mint the same id for two
different sightings, and a replayed frame mints the id it minted before. Each view remembers
its source (the frame uid), so :meth:`Gallery.seen` answers a replayed sighting exactly as
the first time.

**Merges.** A provisional individual found to be another one (two workers enrolled the same
stranger at once: provisional twins) is merged, not deleted: ``merged_into`` names the
survivor, its views keep counting for the survivor, :meth:`Gallery.resolve` maps the id to
it, and :meth:`Gallery.unmerge` undoes it.

On disk it is one ``.npz`` file (:mod:`seawatch.models.fish.gallery_file`); shared between
workers it is a compacted Kafka topic (:mod:`seawatch.models.fish.gallery_log`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.gallery_file import FORMAT, read_arrays, working_gallery, write_arrays
from seawatch.models.fish.rerank import QueryExpansion

NEW_PREFIX = "fish-new"
_ID_HEX = 12  # 48 bits: a clash is about one in a million after 20,000 new fish, and is
# detected anyway (the id's enrolling source differs); it then takes more digits


@dataclass(frozen=True, slots=True)
class GalleryEntry:
    """One enrolled individual as :meth:`Gallery.list` reports it."""

    id: str
    n_embeddings: int
    provisional: bool
    enrolled_at: str
    merged_into: str | None = None  # the survivor, when this id was merged into another
    first_seen_ns: int = 0  # capture time of the sighting that enrolled it (0: enrolled by hand)
    source: str = ""  # uid of the frame that enrolled it ("" when enrolled by hand)


@dataclass(frozen=True, slots=True)
class Match:
    """The best individual for one query and its score (cosine similarity, -1..1)."""

    individual: str | None  # None when the gallery is empty
    similarity: float


@dataclass(frozen=True, slots=True)
class SourceAnswer:
    """What a sighting (a frame uid) was answered the first time it was decided."""

    individual: str
    similarity: float
    new_individual: bool


@dataclass(slots=True)
class _Record:
    embeddings: np.ndarray
    provisional: bool
    enrolled_at: str
    first_seen_ns: int = 0
    merged_into: str | None = None
    sources: list[str] = field(default_factory=list)  # per view: frame uid or ""
    similarities: list[float] = field(default_factory=list)  # per view: the sighting's score


def new_id(source: str, digits: int = _ID_HEX) -> str:
    """The id a new fish first seen in ``source`` (a frame uid) gets: same source, same id."""
    return f"{NEW_PREFIX}-{hashlib.sha256(source.encode()).hexdigest()[:digits]}"


class Gallery:
    """Known individuals and their embeddings; ``dim`` is fixed by the first enrolment."""

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and dim < 1:
            msg = f"embedding dimension must be >= 1, got {dim}"
            raise ValueError(msg)
        self.dim = dim
        self._records: dict[str, _Record] = {}
        self._by_source: dict[str, str] = {}  # frame uid -> the individual holding its view
        self._matrix: tuple[np.ndarray, np.ndarray, list[str]] | None = None
        self.version = 0  # counts the changes to the views (scores computed before are stale)
        # a re-ranking of the scores (rerank.QueryExpansion), None: plain cosines
        self.expansion: QueryExpansion | None = None

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, individual_id: object) -> bool:
        return individual_id in self._records

    @property
    def ids(self) -> list[str]:
        """Individual ids in enrolment order."""
        return list(self._records)

    def enrol(
        self,
        individual_id: str,
        embeddings: np.ndarray,
        provisional: bool = False,
        *,
        enrolled_at: str | None = None,
        source: str = "",
        similarity: float = math.nan,
        first_seen_ns: int = 0,
    ) -> GalleryEntry:
        """Add views (K x D or D) of ``individual_id``; a new id is created if needed.

        Enrolling more views of a known id appends them; enrolling it with
        ``provisional=False`` confirms a provisional individual (it never goes back).
        ``source`` (a frame uid) names the sighting the views come from: a source already
        held by this individual adds nothing (a replay, or the same record read twice).
        """
        if not individual_id or individual_id != individual_id.strip():
            msg = f"individual id must be non-empty without surrounding spaces: {individual_id!r}"
            raise ConfigError(msg)
        views = self._check(embeddings)
        if not len(views):
            msg = f"enrolling {individual_id!r} needs at least one embedding, got none"
            raise ConfigError(msg)
        record = self._records.get(individual_id)
        if record is not None:
            record.provisional = record.provisional and provisional
            if source and source in record.sources:
                return self.entry(individual_id)
        n = len(views)
        if record is None:
            stamp = enrolled_at or datetime.now(UTC).isoformat(timespec="seconds")
            record = _Record(views, provisional, stamp, first_seen_ns)
            self._records[individual_id] = record
        else:
            record.embeddings = np.concatenate([record.embeddings, views])
        record.sources.extend([source] * n)
        record.similarities.extend([float(similarity)] * n)
        if source:
            self._by_source.setdefault(source, individual_id)
        self._matrix = None
        self.version += 1
        return self.entry(individual_id)

    def enrol_new(
        self,
        embeddings: np.ndarray,
        *,
        source: str | None = None,
        similarity: float = math.nan,
        first_seen_ns: int = 0,
        id_from: str | None = None,
    ) -> GalleryEntry:
        """Enrol an unknown fish, provisional, under the id its ``source`` (the frame uid)
        derives (:func:`new_id`), or ``id_from`` when given (a tracklet: the id comes from
        its first good view, the record's first source is the sighting that decided it, so
        a replay of that frame, and only of it, announces the fish again); without either,
        the id derives from the embedding."""
        views = self._check(embeddings)
        origin = id_from or source or hashlib.sha256(views.tobytes()).hexdigest()
        digits = _ID_HEX
        while (candidate := new_id(origin, digits)) in self._records:
            if self._records[candidate].sources[:1] == [source or ""] and source:
                break  # this very sighting enrolled it before: the same id again
            digits += 4  # a clash of two sightings' hashes: a longer id, still deterministic
        return self.enrol(
            candidate,
            views,
            provisional=True,
            source=source or "",
            similarity=similarity,
            first_seen_ns=first_seen_ns,
        )

    def seen(self, source: str) -> SourceAnswer | None:
        """How the sighting ``source`` (a frame uid) was answered, if a view of it is held:
        a replayed frame gets the same answer, and adds no second view."""
        individual = self._by_source.get(source)
        record = self._records.get(individual) if individual else None
        if record is None or source not in record.sources:
            return None
        view = record.sources.index(source)
        return SourceAnswer(individual, record.similarities[view], view == 0)  # type: ignore[arg-type]

    def remove(self, individual_id: str) -> None:
        """Forget an individual and all its embeddings."""
        if individual_id not in self._records:
            msg = f"individual {individual_id!r} is not in the gallery ({len(self)} enrolled)"
            raise ConfigError(msg)
        record = self._records.pop(individual_id)
        for source in record.sources:
            if self._by_source.get(source) == individual_id:
                del self._by_source[source]
        self._matrix = None
        self.version += 1

    def merge(self, loser: str, survivor: str) -> None:
        """Record that ``loser`` is ``survivor``: its sightings resolve to the survivor and
        its views count for it. Reversible (:meth:`unmerge`)."""
        for individual_id in (loser, survivor):
            if individual_id not in self._records:
                msg = f"cannot merge: {individual_id!r} is not in the gallery"
                raise ConfigError(msg)
        if self.resolve(survivor) == loser:
            msg = f"cannot merge {loser!r} into {survivor!r}: {survivor!r} resolves to it"
            raise ConfigError(msg)
        self._records[loser].merged_into = survivor

    def unmerge(self, individual_id: str) -> None:
        """Undo a merge: ``individual_id`` is its own individual again."""
        self._records[individual_id].merged_into = None

    def set_merged_into(self, individual_id: str, survivor: str | None) -> None:
        """Set the merge as a record read from the shared log says (no checks: the log's
        order decides; :meth:`resolve` tolerates a survivor that is not held)."""
        self._records[individual_id].merged_into = survivor

    def resolve(self, individual_id: str) -> str:
        """The id a sighting of ``individual_id`` is reported under: its merge survivor
        (followed through chains), or itself."""
        seen = {individual_id}
        current = individual_id
        while (record := self._records.get(current)) is not None and record.merged_into:
            if record.merged_into in seen or record.merged_into not in self._records:
                break
            current = record.merged_into
            seen.add(current)
        return current

    def entry(self, individual_id: str) -> GalleryEntry:
        """The listing entry of one individual."""
        r = self._records[individual_id]
        return GalleryEntry(
            individual_id,
            len(r.embeddings),
            r.provisional,
            r.enrolled_at,
            r.merged_into,
            r.first_seen_ns,
            r.sources[0] if r.sources else "",
        )

    def views(self, individual_id: str) -> tuple[np.ndarray, list[str], list[float]]:
        """An individual's views, their sources and their sightings' scores (copies)."""
        r = self._records[individual_id]
        return r.embeddings.copy(), list(r.sources), list(r.similarities)

    def list(self) -> list[GalleryEntry]:
        """All individuals, in enrolment order."""
        return [self.entry(individual_id) for individual_id in self._records]

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Per-individual scores (N x len(self)): max cosine over each one's stored views
        (with ``expansion``, of each query expanded over its nearest views)."""
        queries = self._check(embeddings)
        if not self._records:
            return np.zeros((len(queries), 0), np.float32)
        matrix, starts, _ = self._stacked()
        if self.expansion is not None:
            queries = self.expansion.expand(queries, matrix)
        return np.maximum.reduceat(queries @ matrix.T, starts, axis=1)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """The best individual and its score for each query embedding (N x D); a merged
        individual's views count for its survivor (the caller resolves the id)."""
        scores = self.scores(embeddings)
        if scores.shape[1] == 0:
            return [Match(None, -1.0) for _ in range(len(scores))]
        ids = self._stacked()[2]
        best = scores.argmax(1)
        return [Match(ids[b], float(scores[i, b])) for i, b in enumerate(best)]

    def only(self, individual_ids: set[str]) -> Gallery:
        """A new gallery holding only ``individual_ids`` (their views, as enrolled)."""
        kept = Gallery(self.dim)
        for individual_id, r in self._records.items():
            if individual_id in individual_ids:
                for view, source, score in zip(
                    r.embeddings, r.sources, r.similarities, strict=True
                ):
                    kept.enrol(
                        individual_id,
                        view,
                        r.provisional,
                        enrolled_at=r.enrolled_at,
                        source=source,
                        similarity=score,
                        first_seen_ns=r.first_seen_ns,
                    )
        return kept

    def save(self, path: Path) -> Path:
        """Write the gallery atomically to ``path`` (a ``.npz`` file, see
        :mod:`~seawatch.models.fish.gallery_file`)."""
        ids, records = list(self._records), list(self._records.values())
        empty = np.zeros((0, self.dim or 0), np.float32)
        arrays = {
            "embeddings": np.concatenate([r.embeddings for r in records]) if records else empty,
            "owner": np.repeat(np.arange(len(records)), [len(r.embeddings) for r in records]),
            "view_source": np.array([s for r in records for s in r.sources], dtype=np.str_),
            "view_similarity": np.array(
                [s for r in records for s in r.similarities], dtype=np.float64
            ),
            "ids": np.array(ids, dtype=np.str_),
            "provisional": np.array([r.provisional for r in records], dtype=bool),
            "enrolled_at": np.array([r.enrolled_at for r in records], dtype=np.str_),
            "first_seen_ns": np.array([r.first_seen_ns for r in records], dtype=np.int64),
            "merged_into": np.array([r.merged_into or "" for r in records], dtype=np.str_),
            "dim": np.array(self.dim or 0),
            "format": np.array(FORMAT),
        }
        return write_arrays(path, arrays)

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None) -> Gallery:
        """Read a gallery file; ``dim`` (the model's embedding size) is checked when given."""
        a = read_arrays(path)
        gallery = cls(int(a["dim"]) or None)
        if dim is not None and gallery.dim is not None and gallery.dim != dim:
            msg = (
                f"gallery {path} holds {gallery.dim}-d embeddings but the model makes {dim}-d "
                "ones; it was built with another model: re-enrol with this one"
            )
            raise ConfigError(msg)
        emb, sources, scores = a["embeddings"], a["view_source"].tolist(), a["view_similarity"]
        ids = a["ids"].tolist()
        for row, owner in enumerate(a["owner"].tolist()):
            gallery.enrol(
                ids[owner],
                emb[row],
                bool(a["provisional"][owner]),
                enrolled_at=str(a["enrolled_at"][owner]),
                source=sources[row],
                similarity=float(scores[row]),
                first_seen_ns=int(a["first_seen_ns"][owner]),
            )
        for individual_id, survivor in zip(ids, a["merged_into"].tolist(), strict=True):
            if survivor:
                gallery.set_merged_into(individual_id, survivor)
        return gallery

    def _check(self, embeddings: np.ndarray) -> np.ndarray:
        """Validate and fix the dimension on first use; return N x D float32 unit vectors."""
        views = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if views.ndim != 2 or views.shape[1] == 0:
            msg = f"embeddings must be N x D, got shape {np.shape(embeddings)}"
            raise ConfigError(msg)
        if self.dim is None:
            self.dim = views.shape[1]
        if views.shape[1] != self.dim:
            msg = (
                f"embedding dimension {views.shape[1]} does not match the gallery's {self.dim}; "
                "the gallery was built with another model: re-enrol with this one"
            )
            raise ConfigError(msg)
        norms = np.linalg.norm(views, axis=1, keepdims=True)
        return views / np.maximum(norms, 1e-12)

    def _stacked(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """All views as one matrix, the start row of each individual, and the ids (cached)."""
        if self._matrix is None:
            records = list(self._records.values())
            counts = [len(r.embeddings) for r in records]
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
            matrix = np.concatenate([r.embeddings for r in records])
            self._matrix = (matrix, starts, list(self._records))
        return self._matrix


__all__ = [
    "NEW_PREFIX",
    "Gallery",
    "GalleryEntry",
    "Match",
    "SourceAnswer",
    "new_id",
    "working_gallery",
]
