"""The records of the shared fish gallery (the contract of its Kafka topic) and how a
gallery applies them. Pure: no Kafka here (:mod:`seawatch.models.fish.gallery_log` moves the
bytes).

Two kinds of record, each written under a key that only one fact ever has, so no two
writers overwrite each other's work in the compacted topic:

``<id>``            the **individual**: the view(s) that enrolled it, ``provisional``,
                    ``enrolled_at``, ``first_seen_ns`` and ``source`` (the frame: uid, capture
                    time, ``topic/partition/offset``), the sighting's ``similarity`` (the best
                    score it missed), the ``worker`` that minted it and the ``model`` release;
                    ``merged_into`` names the survivor once merged (``merged_by``,
                    ``merge_similarity``, ``merge_rule``: twin, views or person); at
                    enrolment also ``read_to``, the offsets up to which its writer had read
                    this topic when it decided (a record at or past them was not known to
                    it: two twins enrolled without knowing of each other are a race, not
                    the model's split); rewritten only by a merge or an unmerge (both
                    deterministic: the same value whoever writes it) or by the review
                    station (a person's undo, merge or rename, ``worker`` =
                    ``review:<user>``). A tombstone (null value) removes the individual.
``<id>/<hash>``     a further **view** of a provisional individual (one per sighting it was
                    matched by, ``<hash>`` from the sighting's frame uid): ``embedding``,
                    ``source``, ``similarity``, ``worker``, ``written_at``.

Values are UTF-8 JSON (``"v": 1``); embeddings are base64 little-endian float32 (``dim``
floats per view). Applying is idempotent (a view's source is added once), so a worker may
read its own records back, or the whole topic again, without changing anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.gallery import Gallery

log = logging.getLogger(__name__)

VERSION = 1
INDIVIDUAL, VIEW = "individual", "view"


@dataclass(frozen=True, slots=True)
class SightingSource:
    """Where a sighting came from: the frame's uid (its idempotent key), its capture time and
    its place in the frame log (``topic/partition/offset``)."""

    uid: str
    captured_at_ns: int = 0
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    """What one record changed in the gallery."""

    kind: str  # INDIVIDUAL, VIEW or "removed"
    individual: str
    worker: str = ""
    new: bool = False  # the individual was not held before
    provisional: bool = False
    merged_into: str | None = None
    merge_changed: bool = False  # merged_into differs from what the gallery held
    merged_by: str = ""
    merge_similarity: float | None = None
    merge_rule: str | None = None
    written_at: str = ""  # the writer's clock, ISO 8601


def view_key(individual: str, source_uid: str) -> str:
    """The key of a view record: the individual and a hash of the sighting's frame uid."""
    return f"{individual}/{hashlib.sha256(source_uid.encode()).hexdigest()[:12]}"


def individual_record(
    gallery: Gallery,
    individual: str,
    *,
    worker: str,
    model: str,
    source: SightingSource | None = None,
    merge_similarity: float | None = None,
    merge_rule: str | None = None,
    read_to: dict[int, int] | None = None,
) -> tuple[str, bytes]:
    """The individual's record as it stands in ``gallery`` (its enrolling views);
    ``read_to``: the writer's read offsets of the gallery topic, per partition."""
    entry = gallery.entry(individual)
    embeddings, sources, similarities = gallery.views(individual)
    enrolling = [k for k, s in enumerate(sources) if s == entry.source]
    value: dict[str, Any] = {
        "v": VERSION,
        "kind": INDIVIDUAL,
        "individual": individual,
        "provisional": entry.provisional,
        "enrolled_at": entry.enrolled_at,
        "first_seen_ns": entry.first_seen_ns,
        "source": _source(source, entry.source, entry.first_seen_ns),
        "similarity": _number(similarities[enrolling[0]]),
        "dim": int(embeddings.shape[1]),
        "embeddings": _encode(embeddings[enrolling]),
        "merged_into": entry.merged_into,
        "worker": worker,
        "model": model,
        "written_at": _now(),
    }
    if entry.merged_into is not None:
        value["merged_by"] = worker
        value["merge_similarity"] = _number(merge_similarity)
        if merge_rule is not None:
            value["merge_rule"] = merge_rule
    if read_to is not None:
        value["read_to"] = {str(p): int(o) for p, o in sorted(read_to.items())}
    return individual, _dump(value)


def unmerge_record(merged: bytes, *, worker: str) -> bytes:
    """The record that undoes a merge, from the merged id's latest individual record (its
    enrolling views stay as they are): ``merged_into`` null, written by ``worker`` (the
    review station: ``review:<user>``). Every worker applies it as the unmerge it is."""
    value = _rewritten(merged, worker)
    value["merged_into"] = None
    return _dump(value)


def merge_record(record: bytes, *, into: str, worker: str, rule: str) -> bytes:
    """The record that merges an individual into ``into``, from its latest individual record
    (its enrolling views stay as they are): ``merged_into``, ``merged_by`` = ``worker`` (the
    review station: ``review:<user>``), ``merge_rule`` (a person's: ``person``). Every worker
    applies it as any merge: later sightings of the id are reported as ``into``."""
    value = _rewritten(record, worker)
    if value["individual"] == into:
        raise ValueError(f"cannot merge {into!r} into itself")
    value |= {"merged_into": into, "merged_by": worker, "merge_similarity": None}
    value["merge_rule"] = rule
    return _dump(value)


def renamed_record(record: bytes, *, individual: str, worker: str) -> tuple[str, bytes]:
    """A new individual ``individual`` from another's latest individual record (a person's
    rename): its enrolling views and source, not provisional, not merged, written by
    ``worker``. Send it before the old id's :func:`merge_record` into it."""
    value = _rewritten(record, worker)
    if value["individual"] == individual:
        raise ValueError(f"{individual!r} is already its name")
    value |= {"individual": individual, "provisional": False, "merged_into": None}
    return individual, _dump(value)


def _rewritten(record: bytes, worker: str) -> dict[str, Any]:
    """An individual record's value as the base of a rewrite by ``worker``: without its
    merge fields and its enrolment's ``read_to``, written now."""
    value = json.loads(record)
    if value.get("v") != VERSION or value.get("kind") != INDIVIDUAL:
        raise ValueError(f"not an individual record: {value.get('v')}/{value.get('kind')}")
    for key in ("merged_by", "merge_similarity", "merge_rule", "read_to"):
        value.pop(key, None)
    value |= {"worker": worker, "written_at": _now()}
    return value


def view_record(
    gallery: Gallery, individual: str, source: SightingSource, *, worker: str, model: str
) -> tuple[str, bytes]:
    """The record of the view ``source`` added to ``individual``."""
    embeddings, sources, similarities = gallery.views(individual)
    k = sources.index(source.uid)
    value = {
        "v": VERSION,
        "kind": VIEW,
        "individual": individual,
        "source": _source(source, source.uid, source.captured_at_ns),
        "similarity": _number(similarities[k]),
        "dim": int(embeddings.shape[1]),
        "embedding": _encode(embeddings[k : k + 1]),
        "worker": worker,
        "model": model,
        "written_at": _now(),
    }
    return view_key(individual, source.uid), _dump(value)


@dataclass
class RecordApplier:
    """Applies records, in log order, to a gallery; holds back a view whose individual has
    not been read yet (compaction may drop the individual's first record and keep a later
    one, after its views) and counts the records it could not use."""

    gallery: Gallery
    skipped: int = 0
    _waiting: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def apply(self, key: str, raw: bytes | None) -> Applied | None:
        """Apply one record (``raw`` None: a tombstone); what it changed, or None."""
        if raw is None:
            return self._tombstone(key)
        try:
            value = json.loads(raw)
            if value.get("v") != VERSION or value.get("kind") not in (INDIVIDUAL, VIEW):
                raise ValueError(f"unknown version or kind: {value.get('v')}/{value.get('kind')}")
            if value["kind"] == INDIVIDUAL:
                return self._individual(value)
            return self._view(value)
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            self.skipped += 1
            log.warning("gallery_record_skipped key=%r reason=%r", key, str(exc)[:200])
            return None

    def _tombstone(self, key: str) -> Applied | None:
        if "/" in key or key not in self.gallery:
            return None  # a view goes with its individual
        self.gallery.remove(key)
        self._waiting.pop(key, None)
        return Applied("removed", key)

    def _individual(self, value: dict[str, Any]) -> Applied:
        individual = str(value["individual"])
        views = _decode(value["embeddings"], int(value["dim"]))
        source = value.get("source") or {}
        held = individual in self.gallery
        before = self.gallery.entry(individual).merged_into if held else None
        self.gallery.enrol(
            individual,
            views,
            provisional=bool(value["provisional"]),
            enrolled_at=str(value["enrolled_at"]),
            source=str(source.get("uid", "")),
            similarity=_float(value.get("similarity")),
            first_seen_ns=int(value.get("first_seen_ns", 0)),
        )
        merged_into = value.get("merged_into")
        self.gallery.set_merged_into(individual, merged_into)
        for waiting in self._waiting.pop(individual, []):
            self._view(waiting)
        return Applied(
            INDIVIDUAL,
            individual,
            str(value.get("worker", "")),
            new=not held,
            provisional=self.gallery.entry(individual).provisional,
            merged_into=merged_into,
            merge_changed=merged_into != before,
            merged_by=str(value.get("merged_by", "")),
            merge_similarity=value.get("merge_similarity"),
            merge_rule=value.get("merge_rule"),
            written_at=str(value.get("written_at", "")),
        )

    def _view(self, value: dict[str, Any]) -> Applied | None:
        individual = str(value["individual"])
        if individual not in self.gallery:
            self._waiting.setdefault(individual, []).append(value)
            return None
        source = value.get("source") or {}
        self.gallery.enrol(
            individual,
            _decode(value["embedding"], int(value["dim"])),
            provisional=True,  # adds a view; never changes the individual's state
            source=str(source.get("uid", "")),
            similarity=_float(value.get("similarity")),
        )
        return Applied(
            VIEW,
            individual,
            str(value.get("worker", "")),
            written_at=str(value.get("written_at", "")),
        )


def _source(source: SightingSource | None, uid: str, captured_at_ns: int) -> dict[str, Any]:
    if source is not None:
        return {"uid": source.uid, "captured_at_ns": source.captured_at_ns, "ref": source.ref}
    return {"uid": uid, "captured_at_ns": captured_at_ns, "ref": ""}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _encode(views: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(views, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str, dim: int) -> np.ndarray:
    flat = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")
    if dim < 1 or not len(flat) or len(flat) % dim:
        raise ValueError(f"{len(flat)} floats are not whole views of {dim}")
    return flat.reshape(-1, dim).astype(np.float32)


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


__all__ = [
    "INDIVIDUAL",
    "VIEW",
    "Applied",
    "RecordApplier",
    "SightingSource",
    "individual_record",
    "merge_record",
    "renamed_record",
    "unmerge_record",
    "view_key",
    "view_record",
]
