"""An alert as it leaves the daemon: JSON for Kafka and webhooks, a line for InfluxDB."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from seawatch.contracts.points import line

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the alert is about: the frame's Kafka coordinates and, for flagged samples,
    the thumbnail and heat map saved beside the store (paths relative to its evidence dir);
    for a fish of a whole tank frame, its index in the frame (``sighting``, in the JSON only
    when set, so every other alert's document is as before)."""

    frame_uid: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    thumbnail: str | None = None
    heatmap: str | None = None
    sighting: int | None = None  # the fish's index in a whole tank frame (else None)

    @property
    def frame_ref(self) -> str | None:
        """``topic/partition/offset``, or None for alerts not about one frame."""
        if self.topic is None:
            return None
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One fired rule. ``at_ns`` is the capture time of the frame that fired it (for
    ``instrument_silent``, the wall time its limit passed: last frame + ``silent_s``); ``id``
    is stable, so a replay, a restart or another worker judging the same yields the same id."""

    rule: str
    kind: str
    severity: str
    instrument: str
    cruise: str
    subject: str
    message: str
    value: float
    threshold: float
    at_ns: int
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def id(self) -> str:
        key = f"{self.rule}|{self.instrument}|{self.subject}|{self.at_ns}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema version :data:`SCHEMA_VERSION`)."""
        body = asdict(self)
        body["evidence"]["frame_ref"] = self.evidence.frame_ref
        if self.evidence.sighting is None:
            del body["evidence"]["sighting"]
        return {"schema_version": SCHEMA_VERSION, "id": self.id, **body}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    def to_line(self) -> str:
        """The ``alerts`` point (tags: rule, severity, instrument, cruise; taxon for blooms)."""
        text = line(
            "alerts",
            {
                "rule": self.rule,
                "severity": self.severity,
                "instrument": self.instrument,
                "cruise": self.cruise,
                # several taxa can bloom on one frame: the taxon (a bounded set) keeps them apart
                "taxon": self.subject if self.kind == "plankton_bloom" else "",
                # several fish of one tank frame can be new: their index keeps them apart
                "sighting": str(self.evidence.sighting) if self.evidence.sighting else "",
            },
            {
                "message": self.message,
                "value": float(self.value),
                "threshold": float(self.threshold),
                "subject": self.subject,
                "frame_ref": self.evidence.frame_ref,
                "thumbnail": self.evidence.thumbnail,
                "alert_id": self.id,
            },
            self.at_ns,
        )
        assert text is not None  # message is always set
        return text


__all__ = ["SCHEMA_VERSION", "Alert", "Evidence"]
