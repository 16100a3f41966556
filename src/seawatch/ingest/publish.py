"""Publishing frames to Kafka: synthetic streams, and folders of images from an instrument
computer (the bridge for instruments that write files rather than speak Kafka)."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.frames import CLAIM_CHECK_TYPE, FrameKind, FrameMeta, encode_headers
from seawatch.ingest.kafka_io import Publisher

CONTENT_TYPES_BY_SUFFIX = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


@dataclass(frozen=True, slots=True)
class FrameMessage:
    """One frame message to publish: headers (as FrameMeta, or raw ones) and value; the
    synthetic stream also notes what a frame shows (``truth``) and how it is ``broken``."""

    key: bytes
    value: bytes
    meta: FrameMeta | None
    raw_headers: list[tuple[str, bytes]] | None = None
    broken: str | None = None
    truth: str | None = None  # what the frame shows: otolith defect ("normal") or fish name


def publish_messages(
    publisher: Publisher,
    topic: str,
    messages: Iterable[FrameMessage],
    progress: Callable[[int], None] | None = None,
    *,
    topics_by_task: Mapping[str, str] | None = None,
) -> int:
    """Send messages and flush; return how many were sent.

    A message goes to ``topics_by_task[its task]`` when that is given and names its task
    (``frames.otolith`` for otoliths, say), else to ``topic``.
    """
    sent = 0
    routes = topics_by_task or {}
    for message in messages:
        headers = message.raw_headers if message.meta is None else encode_headers(message.meta)
        target = routes.get(message.meta.task, topic) if message.meta is not None else topic
        publisher.send(target, message.value, message.key, headers or [])
        sent += 1
        if progress is not None:
            progress(1)
    publisher.flush()
    return sent


def _read_metadata(csv_path: Path | None) -> dict[str, dict[str, str]]:
    if csv_path is None:
        return {}
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "file" not in reader.fieldnames:
            msg = f"{csv_path} needs a header row with a 'file' column (file names in DIR)"
            raise ConfigError(msg)
        return {row["file"]: row for row in reader}


def directory_messages(
    directory: Path,
    *,
    instrument: str,
    task: str,
    frame_kind: FrameKind,
    cruise: str = "none",
    station: str = "none",
    pixel_size_um: float | None = None,
    metadata_csv: Path | None = None,
    claim_check_over: int | None = None,
) -> list[FrameMessage]:
    """Messages for every image in ``directory`` (sorted by name), with per-file metadata
    from the CSV overriding the defaults. Capture time: the CSV's ``captured-at`` column,
    else the file's modification time, kept unique per instrument. Files larger than
    ``claim_check_over`` bytes are sent as ``file://`` claim checks instead of inline."""
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory of images")
    rows = _read_metadata(metadata_csv)
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in CONTENT_TYPES_BY_SUFFIX)
    if not files:
        msg = f"{directory} holds no images ({', '.join(sorted(CONTENT_TYPES_BY_SUFFIX))})"
        raise ConfigError(msg)
    messages, last_ns = [], 0
    for path in files:
        captured = max(os.stat(path).st_mtime_ns, last_ns + 1)
        last_ns = captured
        base = FrameMeta(
            instrument=instrument,
            task=task,
            captured_at_ns=captured,
            frame_kind=frame_kind,
            content_type=CONTENT_TYPES_BY_SUFFIX[path.suffix.lower()],
            cruise=cruise,
            station=station,
            pixel_size_um=pixel_size_um,
        )
        headers = encode_headers(base)
        row = rows.get(path.name, {})
        overrides = {k: v for k, v in row.items() if k != "file" and v not in (None, "")}
        headers = [(k, v) for k, v in headers if k not in overrides]
        headers += [(k, str(v).encode()) for k, v in overrides.items()]
        if claim_check_over is not None and path.stat().st_size > claim_check_over:
            value = path.resolve().as_uri().encode()
            headers = [(k, v) for k, v in headers if k != "content-type"]
            headers.append(("content-type", CLAIM_CHECK_TYPE.encode()))
        else:
            value = path.read_bytes()
        messages.append(
            FrameMessage(key=instrument.encode(), value=value, meta=None, raw_headers=headers)
        )
    return messages


__all__ = ["CONTENT_TYPES_BY_SUFFIX", "FrameMessage", "directory_messages", "publish_messages"]
