"""Shared-gallery workers driven by hand in one process (tests of the gallery topic): enrol a
new fish and publish it, poll until a condition holds."""

from __future__ import annotations

import functools
import time

import numpy as np

from seawatch.config import KafkaSettings
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_log import GalleryLog
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.shared_gallery import SharedGallery
from seawatch.storage.fish_merges import FishMerges


def store_worker(kafka: KafkaSettings, topic: str, store, name: str, dim: int = 8) -> SharedGallery:
    """A worker's shared gallery of ``dim``-d views (threshold 0.5) whose merges go to the
    store at ``store`` (its ``fish_merges``)."""
    return SharedGallery(
        Gallery(dim),
        functools.partial(GalleryLog, kafka, topic, create=True),
        threshold=0.5,
        model="test",
        merges=FishMerges(store),
        worker=name,
    )


def enrol(worker: SharedGallery, view: np.ndarray, uid: str, at_ns: int) -> str:
    """Enrol ``view`` as a new provisional fish seen in frame ``uid`` and publish it."""
    entry = worker.gallery.enrol_new(view, source=uid, first_seen_ns=at_ns)
    worker.publish([(entry.id, True, SightingSource(uid, at_ns, f"frames.fish/0/{at_ns}"))])
    return entry.id


def sync_until(worker: SharedGallery, condition, what: str, timeout_s: float = 10) -> None:
    """Sync ``worker`` with the topic until ``condition()`` holds (fails after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        worker.sync()
        time.sleep(0.02)
