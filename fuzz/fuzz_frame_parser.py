"""libFuzzer target (atheris) for the frame parser: Kafka headers -> decode -> prepare.

Each input is read as one Kafka record (see :func:`record_from`): a few headers (contract
names in several spellings, or random names) with fuzzed values, a topic, a key and a value
that is either the rest of the input or one of three small valid images (PNG, JPEG, TIFF)
with fuzzed byte edits and a cut. The record goes through ``parse_headers`` and
``FramePreparer.prepare_one``; the target raises (a crash for libFuzzer) when:

* ``parse_headers`` raises anything but FrameError(stage="headers") naming a header, or
  returns a FrameMeta outside the contract (ranges, time window, lengths);
* ``prepare_one`` raises, returns anything but a PreparedFrame or a Rejected, or rejects
  with an empty stage or reason, without a field where the stage has one, with stage
  "prepare" (the catch-all for unexpected exceptions) or a segment error wrapping a
  non-FrameError exception;
* a decoded image is not the size its header declares, or is over the decode limits.

Run: ``python fuzz/fuzz_frame_parser.py -max_total_time=60 fuzz/corpus/frame_parser``
(libFuzzer writes new inputs into the first corpus folder: point it at a copy to keep the
committed seeds as they are). ``make fuzz`` runs it for ten minutes.
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import atheris

# Third-party modules load uninstrumented; only seawatch's own code is instrumented.
import cv2
import numpy as np
import pydantic  # noqa: F401  (imported here so that it is not instrumented)
import pydantic_settings  # noqa: F401

with atheris.instrument_imports(include=["seawatch"]):
    from seawatch.config import IngestSettings
    from seawatch.contracts.card import load_card
    from seawatch.contracts.errors import FrameError
    from seawatch.contracts.frames import (
        CONTENT_TYPES,
        HEADER_NAMES,
        TASK_NAME,
        FrameKind,
        FrameMeta,
        parse_headers,
    )
    from seawatch.contracts.task import PreparedFrame, TaskInputs
    from seawatch.ingest.decode import DecodeLimits, decode_image, image_dimensions, sniff_type
    from seawatch.ingest.prepare import FramePreparer, Rejected
    from seawatch.models.plankton.head import PlanktonClassifier

# Pick bytes below len(NAMES) choose a name; the others read a random name from the input.
NAMES = (*HEADER_NAMES, "Content-Type", "CAPTURED-AT", "Frame-Kind", "x-trace-id", "")
TOPICS = ("frames.plankton", "frames.otolith", "frames.fish", "frames", "", "a.b.plankton")
REPO = Path(__file__).resolve().parents[1]
NO_VALUE = 255  # a header or key size byte of 255 means "None"
INPUT_SIZE = 64
MIN_NS = -2_208_988_800 * 10**9  # 1900-01-01
STAGES_WITH_A_FIELD = {"headers", "fetch", "decode", "route"}
RANGES = {
    "lat": (-90.0, 90.0),
    "lon": (-180.0, 180.0),
    "depth_m": (-10.0, 11_000.0),
    "volume_ml": (1e-9, 1e9),
    "pixel_size_um": (1e-3, 1e5),
}


class Record:
    """The attributes of a kafka-python ConsumerRecord that the prepare stage reads."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        self.topic, self.partition, self.offset = topic, 0, 0
        self.key, self.value, self.headers, self.timestamp = key, value, headers, 0


def _images() -> tuple[bytes, ...]:
    field = np.full((24, 20), 220, np.uint8)
    field[6:14, 5:15] = 40  # one dark object
    color = np.stack([field, field // 2, 255 - field], axis=2)
    return (
        cv2.imencode(".png", field)[1].tobytes(),
        cv2.imencode(".jpg", color)[1].tobytes(),
        cv2.imencode(".tif", (field.astype(np.uint16) * 250))[1].tobytes(),
    )


IMAGES = _images()


def record_from(data: bytes) -> Record:
    """Read one record from a fuzz input (every byte sequence is one)."""
    fdp = atheris.FuzzedDataProvider(data)
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(fdp.ConsumeUInt(1) % 16):
        pick = fdp.ConsumeUInt(1)
        if pick < len(NAMES):
            name = NAMES[pick]
        else:
            name = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeUInt(1) % 16)
        size = fdp.ConsumeUInt(1)
        headers.append((name, None if size == NO_VALUE else fdp.ConsumeBytes(size)))
    topic = TOPICS[fdp.ConsumeUInt(1) % len(TOPICS)]
    key_size = fdp.ConsumeUInt(1)
    key = None if key_size == NO_VALUE else fdp.ConsumeBytes(key_size)
    mode = fdp.ConsumeUInt(1) % 4
    if mode == 0:  # the rest of the input is the value
        return Record(topic, key, fdp.ConsumeBytes(fdp.remaining_bytes()), headers)
    value = bytearray(IMAGES[mode - 1])
    for _ in range(fdp.ConsumeUInt(1) % 8):  # byte edits, mostly in the header's first bytes
        at = fdp.ConsumeUInt(2) % len(value)
        value[at] = fdp.ConsumeUInt(1)
    cut = fdp.ConsumeUInt(2)
    return Record(topic, key, bytes(value[: cut or None]), headers)


def serialise(
    headers: list[tuple[str, bytes | None]], topic: str, key: bytes | None, value: bytes
) -> bytes:
    """The fuzz input that :func:`record_from` reads back as this record (for seeds)."""
    out = bytearray([len(headers)])
    for name, header_value in headers:
        out.append(NAMES.index(name))
        if header_value is None:
            out.append(NO_VALUE)
        else:
            assert len(header_value) < NO_VALUE, name
            out += bytes([len(header_value)]) + header_value
    out.append(TOPICS.index(topic))
    out += bytes([NO_VALUE]) if key is None else bytes([len(key)]) + key
    return bytes(out + b"\x00" + value)


class ContractBroken(AssertionError):
    """An input made the frame parser break its contract (a libFuzzer crash)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractBroken(message)


def _check_meta(meta: FrameMeta) -> None:
    _require(meta.content_type in CONTENT_TYPES and re.fullmatch(TASK_NAME, meta.task), repr(meta))
    _require(isinstance(meta.frame_kind, FrameKind), repr(meta))
    _require(meta.captured_at_ns >= MIN_NS, f"captured before 1900: {meta!r}")
    for name in ("instrument", "cruise", "station", "sample_id", "specimen_id"):
        text = getattr(meta, name)
        ok = text is None or (
            isinstance(text, str) and text == text.strip() and 0 < len(text) <= 256
        )
        _require(ok, f"{name} {text!r} is outside the contract")
    for name, (low, high) in RANGES.items():
        value = getattr(meta, name)
        ok = value is None or (math.isfinite(value) and low <= value <= high)
        _require(ok, f"{name} {value!r} is outside {low}..{high}")


def _check_headers(record: Record, now_ns: int) -> None:
    headers = [(k, v) for k, v in record.headers if v is not None]
    try:
        meta = parse_headers(headers, topic=record.topic, key=record.key, now_ns=now_ns)
    except FrameError as error:
        _require(error.stage == "headers", f"parse_headers failed at {error.stage}: {error}")
        _require(error.field in HEADER_NAMES, f"the error names no header: {error}")
    else:
        _check_meta(meta)


def _check_prepared(result: object, record: Record) -> None:
    if isinstance(result, Rejected):
        error = result.error
        _require(isinstance(error, FrameError), f"rejected with {error!r}")
        _require(bool(error.stage) and bool(error.reason), f"empty stage or reason: {error!r}")
        _require(error.stage != "prepare", f"an exception reached the catch-all: {error}")
        _require(error.stage not in STAGES_WITH_A_FIELD or bool(error.field), f"no field: {error}")
        cause = error.__cause__
        _require(
            error.stage != "segment" or cause is None or isinstance(cause, FrameError),
            f"the segmenter raised {cause!r}",
        )
        return
    _require(isinstance(result, PreparedFrame), f"prepare_one returned {type(result)}")
    if result.frame.meta.task == "plankton":
        _require(len(result.crops) == len(result.objects), "crops and objects differ in count")
        for crop in result.crops:
            _require(crop.shape == (INPUT_SIZE, INPUT_SIZE), f"crop shape {crop.shape}")


def _check_decode(value: bytes) -> None:
    kind = sniff_type(value)
    if kind is None:
        return
    try:
        image = decode_image(value, kind, LIMITS)
    except FrameError as error:
        _require(error.stage == "decode", f"decode failed at {error.stage}: {error}")
        return
    height, width = image.shape[:2]
    _require(image_dimensions(value, kind) == (width, height), "header size != decoded size")
    _require(width * height <= LIMITS.max_pixels, f"{width}x{height} is over the limits")


LIMITS = DecodeLimits(max_bytes=1 << 20, max_pixels=256 * 256, max_side=256)
SETTINGS = IngestSettings(max_bytes=1 << 20, max_pixels=256 * 256, max_side=256)


class _MeanColour:
    """A whole-frame head for the fuzzer: its one input is the mean colour (prepare only)."""

    name = "otolith"

    def prepare(self, frame, image):
        return TaskInputs([np.asarray(image, np.float32).mean((0, 1)).reshape(-1)])


# The real plankton head over the committed card (prepare never calls its backend).
PLANKTON = PlanktonClassifier(None, load_card(REPO / "models" / "plankton"), max_batch=64, top_k=3)
PREPARER = FramePreparer(SETTINGS, {"plankton": PLANKTON, "otolith": _MeanColour()})
NOW_NS = time.time_ns()  # "now" for parse_headers, as prepare_one reads it


def TestOneInput(data: bytes) -> None:  # the name atheris expects
    record = record_from(data)
    _check_headers(record, NOW_NS)
    _check_prepared(PREPARER.prepare_one(record), record)
    _check_decode(record.value)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
