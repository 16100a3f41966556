"""The frame message contract: Kafka headers <-> :class:`FrameMeta`.

A frame message's value is the encoded image (or a claim-check URI when the content type is
``text/uri-list``), its key the instrument id and its headers the metadata below. Parsing
checks every header and raises :class:`~seawatch.contracts.errors.FrameError` naming the
header, so a bad message goes to the dead-letter topic with a reason a technician can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from seawatch.contracts.errors import FrameError

BUILTIN_TASKS = ("plankton", "otolith", "fish")  # the tasks seawatch ships models for
TASK_NAME = r"^[a-z][a-z0-9_]{0,31}$"  # any task's name: the header, the registry key
CLAIM_CHECK_TYPE = "text/uri-list"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/tiff")
CONTENT_TYPES = (*IMAGE_TYPES, CLAIM_CHECK_TYPE)
# The headers of the frame contract, in the order encode_headers writes them.
HEADER_NAMES = (
    "content-type",
    "instrument",
    "task",
    "captured-at",
    "frame-kind",
    "cruise",
    "station",
    "sample-id",
    "lat",
    "lon",
    "depth-m",
    "volume-ml",
    "pixel-size-um",
    "specimen-id",
)
# Names producers use for the same types (the decoder accepts them too).
_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/tif": "image/tiff",
    "image/x-tiff": "image/tiff",
}

# Earliest and latest plausible capture times: nothing before 1900, nothing more than a day
# in the future (a clock that far off is a fault to report, not data to store).
_MIN_TIME_NS = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp() * 1e9)
_FUTURE_SLACK_NS = 86_400 * 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FrameKind(StrEnum):
    """``roi``: the instrument already cut out one object; ``full``: a field to segment."""

    ROI = "roi"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What the headers say about one frame. ``captured_at_ns`` + ``instrument`` identify it."""

    instrument: str
    task: str
    captured_at_ns: int
    frame_kind: FrameKind
    content_type: str
    cruise: str = "none"
    station: str = "none"
    sample_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    depth_m: float | None = None
    volume_ml: float | None = None
    pixel_size_um: float | None = None
    specimen_id: str | None = None

    @property
    def uid(self) -> str:
        """The frame's idempotent key: a replay of the same frame has the same uid."""
        return f"{self.instrument}@{self.captured_at_ns}"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a frame came from: the evidence an alert or a DLQ record points to."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(slots=True)
class Frame:
    """A frame as read from Kafka, not yet decoded."""

    meta: FrameMeta
    ref: SourceRef
    payload: bytes
    broker_ts_ms: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _text(headers: dict[str, bytes], name: str) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise FrameError("headers", "is not valid UTF-8", field=name) from None
    if len(value) > 256:
        raise FrameError("headers", f"is {len(value)} characters; at most 256", field=name)
    return value or None


def _required(headers: dict[str, bytes], name: str, hint: str) -> str:
    value = _text(headers, name)
    if value is None:
        raise FrameError("headers", f"is missing; {hint}", field=name)
    return value


def _number(headers: dict[str, bytes], name: str, low: float, high: float) -> float | None:
    value = _text(headers, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise FrameError("headers", f"{value!r} is not a number", field=name) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise FrameError("headers", f"{value!r} is outside {low}..{high}", field=name)
    return number


def epoch_ns(value: str) -> int:
    """RFC 3339 (with a zone) or integer epoch nanoseconds -> epoch ns; ValueError otherwise."""
    text = value.strip()
    if text.removeprefix("-").isascii() and text.removeprefix("-").isdigit():
        return int(text)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{value!r} is neither RFC 3339 (e.g. 2026-05-01T00:00:00Z) nor epoch nanoseconds"
        raise ValueError(msg) from None
    if stamp.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; add Z or an offset like +02:00")
    # Integer arithmetic: int(stamp.timestamp()) rounds toward zero, a second late before 1970.
    return (stamp - _EPOCH) // timedelta(microseconds=1) * 1000


def parse_time_ns(value: str, *, now_ns: int) -> int:
    """Parse ``captured-at`` (RFC 3339 or integer epoch nanoseconds) and check it is plausible."""
    try:
        ns = epoch_ns(value)
    except ValueError as exc:
        raise FrameError("headers", str(exc), field="captured-at") from None
    if ns < _MIN_TIME_NS:
        raise FrameError("headers", f"{value!r} is before 1900", field="captured-at")
    if ns > now_ns + _FUTURE_SLACK_NS:
        msg = f"{value!r} is more than a day in the future; check the instrument clock"
        raise FrameError("headers", msg, field="captured-at")
    return ns


def parse_headers(
    raw_headers: list[tuple[str, bytes]], *, topic: str, key: bytes | None, now_ns: int
) -> FrameMeta:
    """Build :class:`FrameMeta` from Kafka headers; raise FrameError naming the bad header."""
    headers = {name.lower(): value for name, value in raw_headers if value is not None}
    content_type = _required(headers, "content-type", f"one of {', '.join(CONTENT_TYPES)}")
    content_type = content_type.split(";")[0].strip().lower()
    content_type = _TYPE_ALIASES.get(content_type, content_type)
    if content_type not in CONTENT_TYPES:
        msg = f"{content_type!r} is not supported; use one of {', '.join(CONTENT_TYPES)}"
        raise FrameError("headers", msg, field="content-type")
    instrument = _text(headers, "instrument")
    if instrument is None and key:  # the key stands in for the header, under its rules
        instrument = _text({"instrument": key}, "instrument")
    if not instrument:
        raise FrameError("headers", "is missing and the message has no key", field="instrument")
    task = _text(headers, "task") or _task_from_topic(topic)
    if task is None or not re.fullmatch(TASK_NAME, task):
        msg = (
            f"{task!r} is not a task name (lower case letters, digits, _); use one of "
            f"{', '.join(BUILTIN_TASKS)}, a plug-in task's name, or topic frames.<task>"
        )
        raise FrameError("headers", msg, field="task")
    kind_text = _text(headers, "frame-kind") or FrameKind.ROI.value
    try:
        kind = FrameKind(kind_text)
    except ValueError:
        raise FrameError(
            "headers", f"{kind_text!r} is not roi or full", field="frame-kind"
        ) from None
    captured = parse_time_ns(
        _required(headers, "captured-at", "RFC 3339 or epoch ns"), now_ns=now_ns
    )
    return FrameMeta(
        instrument=instrument,
        task=task,
        captured_at_ns=captured,
        frame_kind=kind,
        content_type=content_type,
        cruise=_text(headers, "cruise") or "none",
        station=_text(headers, "station") or "none",
        sample_id=_text(headers, "sample-id"),
        lat=_number(headers, "lat", -90.0, 90.0),
        lon=_number(headers, "lon", -180.0, 180.0),
        depth_m=_number(headers, "depth-m", -10.0, 11_000.0),
        volume_ml=_number(headers, "volume-ml", 1e-9, 1e9),
        pixel_size_um=_number(headers, "pixel-size-um", 1e-3, 1e5),
        specimen_id=_text(headers, "specimen-id"),
    )


def _task_from_topic(topic: str) -> str | None:
    prefix, _, suffix = topic.rpartition(".")
    return suffix if prefix and re.fullmatch(TASK_NAME, suffix) else None


def encode_headers(meta: FrameMeta) -> list[tuple[str, bytes]]:
    """The Kafka headers for ``meta`` (the inverse of :func:`parse_headers`)."""
    pairs: list[tuple[str, object]] = [
        ("content-type", meta.content_type),
        ("instrument", meta.instrument),
        ("task", meta.task),
        ("captured-at", meta.captured_at_ns),
        ("frame-kind", meta.frame_kind.value),
        ("cruise", meta.cruise),
        ("station", meta.station),
        ("sample-id", meta.sample_id),
        ("lat", meta.lat),
        ("lon", meta.lon),
        ("depth-m", meta.depth_m),
        ("volume-ml", meta.volume_ml),
        ("pixel-size-um", meta.pixel_size_um),
        ("specimen-id", meta.specimen_id),
    ]
    return [(name, str(value).encode()) for name, value in pairs if value is not None]


__all__ = [
    "BUILTIN_TASKS",
    "CLAIM_CHECK_TYPE",
    "CONTENT_TYPES",
    "HEADER_NAMES",
    "IMAGE_TYPES",
    "TASK_NAME",
    "Frame",
    "FrameKind",
    "FrameMeta",
    "SourceRef",
    "encode_headers",
    "parse_headers",
    "parse_time_ns",
]
