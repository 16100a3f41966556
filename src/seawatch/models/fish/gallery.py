"""The gallery of known fish: enrolled embeddings per individual, matching, one file on disk.

numpy only. An individual holds one or more L2-normalised embeddings (views of that fish).
A query's score for an individual is the **maximum** cosine similarity over that
individual's stored embeddings (nearest view: a new pose only needs to resemble one enrolled
view). :meth:`Gallery.match` returns the best individual and its score per query; the open-set
decision (match or new fish) belongs to the caller, who holds the calibrated threshold.

New fish get ids ``fish-new-0001``, ``fish-new-0002``, ...: the counter is stored in the
file and never goes back, so an id is not reused even after its individual was removed.

On disk it is one ``.npz`` file (no pickle): ``embeddings`` (M x D float32), ``owner`` (M,
index into ``ids``), ``ids``, ``provisional``, ``enrolled_at`` (ISO 8601 UTC), ``dim``,
``next_new`` and ``format``. :meth:`Gallery.save` writes a temporary file beside the target
and ``os.replace``-s it, so a reader never sees half a gallery.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seawatch.contracts.errors import ConfigError

FORMAT = 1
NEW_PREFIX = "fish-new"
_KEYS = ("embeddings", "owner", "ids", "provisional", "enrolled_at", "dim", "next_new", "format")


@dataclass(frozen=True, slots=True)
class GalleryEntry:
    """One enrolled individual as :meth:`Gallery.list` reports it."""

    id: str
    n_embeddings: int
    provisional: bool
    enrolled_at: str


@dataclass(frozen=True, slots=True)
class Match:
    """The best individual for one query and its score (cosine similarity, -1..1)."""

    individual: str | None  # None when the gallery is empty
    similarity: float


@dataclass(slots=True)
class _Record:
    embeddings: np.ndarray
    provisional: bool
    enrolled_at: str


class Gallery:
    """Known individuals and their embeddings; ``dim`` is fixed by the first enrolment."""

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and dim < 1:
            msg = f"embedding dimension must be >= 1, got {dim}"
            raise ValueError(msg)
        self.dim = dim
        self.next_new = 1
        self._records: dict[str, _Record] = {}
        self._matrix: tuple[np.ndarray, np.ndarray, list[str]] | None = None

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
    ) -> GalleryEntry:
        """Add views (K x D or D) of ``individual_id``; a new id is created if needed.

        Enrolling more views of a known id appends them; enrolling it with
        ``provisional=False`` confirms a provisional individual (it never goes back).
        """
        if not individual_id or individual_id != individual_id.strip():
            msg = f"individual id must be non-empty without surrounding spaces: {individual_id!r}"
            raise ConfigError(msg)
        views = self._check(embeddings)
        if not len(views):
            msg = f"enrolling {individual_id!r} needs at least one embedding, got none"
            raise ConfigError(msg)
        record = self._records.get(individual_id)
        if record is None:
            stamp = enrolled_at or datetime.now(UTC).isoformat(timespec="seconds")
            self._records[individual_id] = _Record(views, provisional, stamp)
        else:
            record.embeddings = np.concatenate([record.embeddings, views])
            record.provisional = record.provisional and provisional
        self._matrix = None
        return self.entry(individual_id)

    def enrol_new(self, embeddings: np.ndarray) -> GalleryEntry:
        """Enrol an unknown fish under the next free ``fish-new-NNNN`` id, provisional."""
        while (new_id := f"{NEW_PREFIX}-{self.next_new:04d}") in self._records:
            self.next_new += 1
        self.next_new += 1
        return self.enrol(new_id, embeddings, provisional=True)

    def remove(self, individual_id: str) -> None:
        """Forget an individual and all its embeddings."""
        if individual_id not in self._records:
            msg = f"individual {individual_id!r} is not in the gallery ({len(self)} enrolled)"
            raise ConfigError(msg)
        del self._records[individual_id]
        self._matrix = None

    def entry(self, individual_id: str) -> GalleryEntry:
        """The listing entry of one individual."""
        record = self._records[individual_id]
        return GalleryEntry(
            individual_id, len(record.embeddings), record.provisional, record.enrolled_at
        )

    def list(self) -> list[GalleryEntry]:
        """All individuals, in enrolment order."""
        return [self.entry(individual_id) for individual_id in self._records]

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Per-individual scores (N x len(self)): max cosine over each one's stored views."""
        queries = self._check(embeddings)
        if not self._records:
            return np.zeros((len(queries), 0), np.float32)
        matrix, starts, _ = self._stacked()
        return np.maximum.reduceat(queries @ matrix.T, starts, axis=1)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """The best individual and its score for each query embedding (N x D)."""
        scores = self.scores(embeddings)
        if scores.shape[1] == 0:
            return [Match(None, -1.0) for _ in range(len(scores))]
        ids = self._stacked()[2]
        best = scores.argmax(1)
        return [Match(ids[b], float(scores[i, b])) for i, b in enumerate(best)]

    def save(self, path: Path) -> Path:
        """Write the gallery atomically to ``path`` (a ``.npz`` file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        dim = self.dim or 0
        records = list(self._records.values())
        arrays = {
            "embeddings": np.concatenate([r.embeddings for r in records])
            if records
            else np.zeros((0, dim), np.float32),
            "owner": np.repeat(np.arange(len(records)), [len(r.embeddings) for r in records]),
            "ids": np.array(list(self._records), dtype=np.str_),
            "provisional": np.array([r.provisional for r in records], dtype=bool),
            "enrolled_at": np.array([r.enrolled_at for r in records], dtype=np.str_),
            "dim": np.array(dim),
            "next_new": np.array(self.next_new),
            "format": np.array(FORMAT),
        }
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
        try:
            os.fchmod(handle, mode)  # mkstemp makes 0600; keep the file readable as before
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **arrays)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None) -> Gallery:
        """Read a gallery file; ``dim`` (the model's embedding size) is checked when given."""
        path = Path(path)
        try:
            with path.open("rb") as handle, np.load(handle, allow_pickle=False) as data:
                arrays = {key: data[key] for key in _KEYS}
        except FileNotFoundError:
            msg = f"gallery file {path} does not exist; enrol individuals or train a model first"
            raise ConfigError(msg) from None
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            msg = f"gallery file {path} is corrupt or not a gallery ({exc}); restore it or re-enrol"
            raise ConfigError(msg) from exc
        gallery = cls._from_arrays(path, arrays)
        if dim is not None and gallery.dim is not None and gallery.dim != dim:
            msg = (
                f"gallery {path} holds {gallery.dim}-d embeddings but the model makes {dim}-d "
                "ones; it was built with another model: re-enrol with this one"
            )
            raise ConfigError(msg)
        return gallery

    @classmethod
    def _from_arrays(cls, path: Path, a: dict[str, np.ndarray]) -> Gallery:
        emb, owner, ids = a["embeddings"], a["owner"], a["ids"]
        n = len(ids)
        consistent = (
            int(a["format"]) == FORMAT
            and emb.ndim == 2
            and np.issubdtype(emb.dtype, np.floating)
            and len(owner) == len(emb)
            and len(a["provisional"]) == len(a["enrolled_at"]) == n
            and (n == 0 or (owner.min() >= 0 and owner.max() < n))
            and bool(np.isfinite(emb).all())
            and (int(a["dim"]) == emb.shape[1] or len(emb) == 0)
        )
        if not consistent:
            msg = f"gallery file {path} is corrupt (inconsistent arrays); restore it or re-enrol"
            raise ConfigError(msg)
        gallery = cls(int(a["dim"]) or None)
        gallery.next_new = int(a["next_new"])
        for i, individual_id in enumerate(ids.tolist()):
            gallery._records[individual_id] = _Record(
                emb[owner == i].astype(np.float32),
                bool(a["provisional"][i]),
                str(a["enrolled_at"][i]),
            )
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


def working_gallery(path: Path, model_gallery: Path) -> Path:
    """The daemon's own gallery file at ``path``, seeded from the model's gallery the first
    time. The model's gallery (known individuals) is never written to; enrolments of new
    individuals go to the working copy (``storage.local.fish_gallery``)."""
    if not path.exists():
        if not model_gallery.is_file():
            msg = f"fish model has no gallery file at {model_gallery}; retrain or enrol one"
            raise ConfigError(msg)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_gallery, path)
    return path


__all__ = ["NEW_PREFIX", "Gallery", "GalleryEntry", "Match", "working_gallery"]
