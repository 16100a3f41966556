"""One fish gallery shared by every worker of a consumer group, on every host, through Kafka.

Why a log and not a file or a lock: the workers already scale through Kafka, and a compacted
topic is a store every worker can read whole and append to without talking to the others.
Nothing needs coordinating because no two workers ever write the same fact:

- **ids** come from the sighting that enrolled the fish (:func:`~seawatch.models.fish.gallery.
  new_id`: a hash of the frame's uid), so two workers cannot mint one id for two fish, and
  a replayed frame (a worker died after enrolling, before committing) mints the same id again;
- **views** are records of their own (key: the individual and the sighting), so two workers
  adding views to one provisional fish at the same moment both keep theirs;
- **merges** are deterministic: the same two ids merge the same way whoever notices.

How a worker uses it (:class:`SharedGallery`, driven by the fish head between batches):
at its first fish batch it reads the whole topic over the seed gallery (the model's known
fish, or the working copy left by an earlier run); before deciding each batch it polls what
the others wrote since (no wait: what a fetch brought is there at the next batch); after
deciding it produces its enrolments and views and flushes them before the records are stored
and the offsets committed, so an enrolment is never lost to a crash. After a pause (no fish
batch for :data:`STALE_S`) it reads to the end instead of polling: the Kafka client fetches
only while it is polled, so what one poll returns after a pause is old. On close it reads to
the end once more (merging the twins it finds there too) and exports the gallery to its
``.npz`` file.

**Provisional twins.** Two workers that see the same stranger within one poll of each other
both enrol it. When a worker reads another's new provisional individual that matches one of
its own provisional ids at or above the match threshold, the later enrolment (by the capture
time of its first sighting, then by id) is merged into the earlier: ``merged_into`` is
published on the loser's record and written to the local store's ``fish_merges`` table;
later sightings resolve to the survivor; stored sightings keep the id they were given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.gallery_records import (
    INDIVIDUAL,
    Applied,
    RecordApplier,
    SightingSource,
    individual_record,
    view_record,
)
from seawatch.storage.fish_merges import TWIN, VIEWS, FishMerges

log = logging.getLogger(__name__)

Kept = tuple[str, bool, SightingSource]  # individual, new individual, the sighting
STALE_S = 1.0  # longer than this since the last sync: read to the end, not one poll
CLOSE_READ_S = 5.0  # the last read at stop (a worker drains within 10 s of SIGTERM)


def worker_name() -> str:
    """This process as the records name their writer: ``host/pid``."""
    return f"{socket.gethostname()}/{os.getpid()}"


class SharedGallery:
    """A gallery kept in step with the shared log (opened at the first :meth:`sync`)."""

    def __init__(
        self,
        gallery: Gallery,
        open_log: Callable[[], GalleryLog],
        *,
        threshold: float,
        model: str,
        export_path: Path | None = None,
        merges: FishMerges | None = None,
        worker: str | None = None,
    ) -> None:
        self.gallery = gallery
        self.threshold = threshold
        self.model = model
        self.export_path = export_path
        self.merges = merges
        self.worker = worker or worker_name()
        self._open_log = open_log
        self._log: GalleryLog | None = None
        self._applier = RecordApplier(gallery)
        self._minted: set[str] = set()  # provisional ids this process enrolled
        self._synced = 0.0  # time.monotonic() of the last sync
        self.twins_merged = 0
        # how old others' records were when the poll between two batches read them (not the
        # read after a pause: those are as old as the pause)
        self.tail_lags_s: list[float] = []
        self.syncs = {"polled": 0, "read_to_end": 0}  # how each sync since the first read

    def sync(self) -> None:
        """Before a batch is decided: read what the other workers wrote (the whole topic the
        first time), and merge their new provisional fish into this worker's twins."""
        now = time.monotonic()
        stale, self._synced = now - self._synced > STALE_S, now
        if self._log is None:
            self._log = self._open_log()
            records = self._log.read_to_end()
            self._apply(records, merge_twins=False)
            log.info(
                "fish_gallery_shared topic=%s records=%d individuals=%d seconds=%.2f",
                self._log.topic,
                len(records),
                len(self.gallery),
                time.monotonic() - now,
            )
            return
        records = self._log.read_to_end() if stale else self._log.poll()
        self.syncs["read_to_end" if stale else "polled"] += 1
        self._apply(records, merge_twins=True, tail=not stale)

    def publish(self, kept: Sequence[Kept]) -> None:
        """After a batch is decided, before it is stored: its new individuals and views to
        the log, flushed (acknowledged by the broker)."""
        if not kept:
            return
        log_ = self._opened()
        read_to = log_.read_to()  # what this batch was decided knowing (synced before it)
        for individual, new, source in kept:
            if new:
                self._minted.add(individual)
                key, value = individual_record(
                    self.gallery,
                    individual,
                    worker=self.worker,
                    model=self.model,
                    source=source,
                    read_to=read_to,
                )
            else:
                key, value = view_record(
                    self.gallery, individual, source, worker=self.worker, model=self.model
                )
            log_.send(key, value)
        log_.flush()

    def publish_merge(self, loser: str, survivor: str, similarity: float) -> None:
        """A merge this worker decided (two of its provisional ids are one fish, issue 28):
        ``merged_into`` on the loser's record, flushed, and the store's ``fish_merges``."""
        key, value = individual_record(
            self.gallery,
            loser,
            worker=self.worker,
            model=self.model,
            merge_similarity=similarity,
            merge_rule=VIEWS,
        )
        log_ = self._opened()
        log_.send(key, value)
        log_.flush()
        if self.merges is not None:
            self.merges.record(
                loser, survivor, similarity=similarity, merged_by=self.worker, rule=VIEWS
            )

    def close(self) -> None:
        """Read to the end once more (merging twins enrolled since the last batch), export
        the gallery file, close the log."""
        if self._log is None:
            return
        try:
            try:
                self._apply(self._log.read_to_end(CLOSE_READ_S), merge_twins=True)
            except Exception as exc:  # the broker gone at stop: keep what this worker has
                log.warning(
                    "fish_gallery_final_read_failed error=%r effect='the export holds what this "
                    "worker read before; the topic keeps the rest'",
                    str(exc)[:200],
                )
            if self.export_path is not None:
                self.gallery.save(self.export_path)
                lags = sorted(self.tail_lags_s) or [0.0]
                log.info(
                    "fish_gallery_exported path=%s individuals=%d twins_merged=%d "
                    "tail_records=%d tail_lag_p50_s=%.3f tail_lag_max_s=%.3f syncs_polled=%d "
                    "syncs_read_to_end=%d",
                    self.export_path,
                    len(self.gallery),
                    self.twins_merged,
                    len(self.tail_lags_s),
                    lags[len(lags) // 2],
                    lags[-1],
                    self.syncs["polled"],
                    self.syncs["read_to_end"],
                )
        finally:
            self._log.close()
            self._log = None
            if self.merges is not None:
                self.merges.close()

    def _opened(self) -> GalleryLog:
        if self._log is None:
            self.sync()
        return self._log  # type: ignore[return-value]

    def _apply(self, records: list, *, merge_twins: bool, tail: bool = False) -> None:
        merged = False
        now = datetime.now(UTC)
        for key, value in records:
            applied = self._applier.apply(key, value)
            if tail and applied is not None and applied.worker != self.worker:
                self._lag(now, applied.written_at)
            if applied is None or applied.kind != INDIVIDUAL:
                continue
            if applied.merge_changed and self.merges is not None:
                self.merges.record(
                    applied.individual,
                    applied.merged_into,
                    similarity=applied.merge_similarity,
                    merged_by=applied.merged_by or applied.worker,
                    rule=applied.merge_rule,
                )
            if merge_twins and self._is_foreign_enrolment(applied):
                merged = self._merge_twin(applied.individual) or merged
        if merged:
            self._opened().flush()

    def _lag(self, now: datetime, written_at: str) -> None:
        """Note how long another worker's record took to reach this one (between batches)."""
        with contextlib.suppress(ValueError, TypeError):  # no time, or no zone: nothing to note
            self.tail_lags_s.append((now - datetime.fromisoformat(written_at)).total_seconds())

    def _is_foreign_enrolment(self, applied: Applied) -> bool:
        return (
            applied.new
            and applied.provisional
            and applied.merged_into is None
            and applied.worker != self.worker
            and bool(self._minted)
        )

    def _merge_twin(self, other: str) -> bool:
        """Merge ``other`` (another worker's new provisional fish) with this worker's own
        provisional id it matches best at or above the threshold, if any."""
        own = [i for i in self._minted if i in self.gallery and self.gallery.resolve(i) == i]
        if not own:
            return False
        views = self.gallery.views(other)[0]
        columns = {individual: k for k, individual in enumerate(self.gallery.ids)}
        scores = self.gallery.scores(views).max(axis=0)[[columns[i] for i in own]]
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        if similarity < self.threshold:
            return False
        first = self.gallery.entry(other), self.gallery.entry(own[best])
        survivor, loser = sorted(first, key=lambda e: (e.first_seen_ns, e.id))
        self.gallery.merge(loser.id, survivor.id)
        key, value = individual_record(
            self.gallery,
            loser.id,
            worker=self.worker,
            model=self.model,
            merge_similarity=similarity,
            merge_rule=TWIN,
        )
        self._opened().send(key, value)
        if self.merges is not None:
            self.merges.record(
                loser.id,
                survivor.id,
                similarity=round(similarity, 6),
                merged_by=self.worker,
                rule=TWIN,
            )
        self.twins_merged += 1
        log.info(
            "fish_twins_merged individual=%s survivor=%s similarity=%.3f",
            loser.id,
            survivor.id,
            similarity,
        )
        return True


__all__ = ["Kept", "SharedGallery", "worker_name"]
