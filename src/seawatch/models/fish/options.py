"""``tasks.fish.options``, and what the head builds from them: the whole-frame detector and
the gallery shared by every worker.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.task import TaskOptions
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.shared_gallery import SharedGallery
from seawatch.models.fish.whole_frames import Detector


class FishOptions(TaskOptions):
    """``tasks.fish.options``."""

    enrol_new: bool = Field(
        True, description="a fish below the match threshold enrols a new provisional id"
    )
    shared_gallery: bool = Field(
        True,
        description="one gallery for every worker of the consumer group (every host), kept "
        "in a compacted Kafka topic; false: a working file per process (one process only)",
    )
    tracklets: bool = Field(
        True,
        description="link a camera's sightings close in time into tracklets and decide each "
        "as a group (a new fish only after 3 good views agree); false: each sighting alone",
    )
    whole_frames: bool = Field(
        False,
        description="fish frames are whole tank or trawl frames: each fish is found, turned "
        "head-left (mirrored when facing right) and identified as its own sighting with its "
        "box; false: every frame is one tight head-left crop",
    )
    threshold_by_gallery_size: bool = Field(
        False,
        description="match at the card's threshold for the gallery's present number of "
        "individuals (thresholds_by_gallery_size: the same false-match rate on any gallery; "
        "`seawatch evaluate fish --calibrate-sizes` writes it); false, or a card without the "
        "table: the card's single match_similarity",
    )
    query_expansion: bool = Field(
        False,
        description="re-rank gallery scores by query expansion (alpha-QE over the 2 nearest "
        "views) and match at the card's match_similarity_query_expansion (measured: no "
        "gain on the open-set streams, see the fish README)",
    )
    gallery_topic: str | None = Field(
        None, description="the shared gallery's topic; default <kafka.group_id>.fish-gallery"
    )
    detector: Literal["threshold", "model"] = Field(
        "threshold",
        description="with whole_frames, how fish are found: threshold (the classical "
        "background-difference detector) or model (the fish segmentation network of "
        "detector_model_dir, which cuts touching fish apart)",
    )
    detector_model_dir: Path = Field(
        Path("models/fish-segmentation"),
        description="the fish segmentation artifact (seawatch train fish-segmentation), "
        "for detector: model",
    )

    @model_validator(mode="after")
    def _model_needs_frames(self) -> FishOptions:
        if self.detector == "model" and not self.whole_frames:
            msg = (
                "detector: model finds fish in whole frames; set whole_frames: true, or leave "
                "detector at threshold"
            )
            raise ValueError(msg)
        return self

    @field_validator("gallery_topic")
    @classmethod
    def _topic_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value):
            msg = "a Kafka topic name: 1-249 of the characters A-Z a-z 0-9 . _ -"
            raise ValueError(msg)
        return value


def build_detector(options: FishOptions) -> Detector | None:
    """The segmentation network's detector for ``detector: model`` (None: the classical)."""
    if options.detector != "model":
        return None
    from seawatch.models.fish.frame_segment import FishSegmenter

    try:
        return FishSegmenter(options.detector_model_dir)
    except (ConfigError, OSError, ValueError) as exc:
        msg = (
            f"tasks.fish.options.detector_model_dir: {exc}; train one with `seawatch train "
            "fish-segmentation` or set detector: threshold"
        )
        raise ConfigError(msg) from exc


def threshold_key(options: FishOptions, card: ModelCard) -> str:
    """The card's threshold the scores are matched at: for query-expanded scores their own
    (twin merges of the shared gallery compare expanded scores too; the single threshold
    even with ``threshold_by_gallery_size``)."""
    if not options.query_expansion:
        return "match_similarity"
    from seawatch.models.fish.rerank import expansion_threshold_key

    return expansion_threshold_key(card)


def build_shared_gallery(
    gallery: Gallery, options: FishOptions, card: ModelCard, settings, path: Path
) -> SharedGallery:
    """The gallery shared through ``options.gallery_topic`` (connected at the first batch)."""
    from seawatch.models.fish.gallery_log import GalleryLog
    from seawatch.storage.fish_merges import FishMerges

    kafka = settings.kafka
    topic = options.gallery_topic or f"{kafka.group_id}.fish-gallery"
    local = settings.storage.local
    return SharedGallery(
        gallery,
        functools.partial(GalleryLog, kafka, topic, create=kafka.create_topics),
        threshold=float(card.thresholds[threshold_key(options, card)]),
        model=card.release,
        export_path=path,
        merges=FishMerges(local.path) if local.enabled else None,
    )


__all__ = ["FishOptions", "build_detector", "build_shared_gallery", "threshold_key"]
