"""Property of the prepare stage: any Kafka record becomes a PreparedFrame or a Rejected with
a FrameError naming its stage; nothing raises and nothing reaches the catch-all."""

from __future__ import annotations

import numpy as np
from hypothesis import event, example, given
from hypothesis import strategies as st

from seawatch.config import IngestSettings
from seawatch.contracts.errors import FrameError
from seawatch.contracts.frames import BUILTIN_TASKS, CONTENT_TYPES, HEADER_NAMES
from seawatch.contracts.task import PreparedFrame
from seawatch.ingest.decode import sniff_type
from seawatch.ingest.prepare import FramePreparer, Rejected
from tests.heads import WholeFrameHead, plankton_preparing_head
from tests.property.records import Record
from tests.property.strategies import encode, images, mutated, props

INPUT_SIZE = 64  # the committed plankton card's input side
STAGES_WITH_A_FIELD = {"headers", "fetch", "decode", "route"}


PREPARER = FramePreparer(
    IngestSettings(max_side=64, max_pixels=64 * 64),
    # fish has no head here: its frames go to "route"
    {"plankton": plankton_preparing_head(), "otolith": WholeFrameHead("otolith")},
)


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(3)
    field = np.full((48, 40), 220, np.uint8)
    field[10:20, 12:30] = 30  # one dark object on a light field
    return [
        encode(field, "image/png"),
        encode(field, "image/jpeg"),
        encode(np.stack([field] * 3, axis=2), "image/tiff"),
        encode((field.astype(np.uint16) * 200), "image/png"),
        encode(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "image/jpeg"),
    ]


SEEDS = _seeds()


@st.composite
def payloads(draw: st.DrawFn) -> tuple[bytes, str]:
    """(value, content-type) pairs: valid images, damaged ones, claim checks and junk."""
    choice = draw(st.sampled_from(["image", "seed", "damaged", "junk", "uri"]))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if choice == "image":
        content_type = draw(st.sampled_from(["image/png", "image/tiff"]))
        return encode(draw(images(max_side=40)), content_type), content_type
    if choice in ("seed", "damaged"):
        value = draw(st.sampled_from(SEEDS) if choice == "seed" else mutated(SEEDS))
        declared = sniff_type(value)  # mostly the true type, sometimes a wrong one
        return value, declared if declared and draw(st.integers(0, 4)) else content_type
    if choice == "uri":
        uri = draw(st.sampled_from(["file:///etc/passwd", "s3://b/k", "file:///../x", "\xff"]))
        return uri.encode(), "text/uri-list"
    return draw(st.binary(max_size=64)), content_type


@st.composite
def records(draw: st.DrawFn) -> Record:
    value, content_type = draw(payloads())
    headers = [
        ("content-type", content_type.encode()),
        ("task", draw(st.sampled_from(BUILTIN_TASKS)).encode()),
        ("instrument", b"uvp6-014"),
        ("captured-at", b"2026-06-01T12:00:00Z"),
        ("frame-kind", draw(st.sampled_from([b"roi", b"full"]))),
    ]
    extra = st.tuples(
        st.sampled_from(HEADER_NAMES) | st.text(max_size=8),
        st.none() | st.binary(max_size=12) | st.sampled_from([b"nan", b"1e-3", b"0.5", b"-1"]),
    )
    roll = draw(st.integers(0, 19))  # mostly well-formed headers, so decoding gets exercised
    if roll == 0:
        headers = draw(st.lists(extra, max_size=6))
    elif roll < 4:
        headers = draw(st.permutations(headers + draw(st.lists(extra, max_size=3))))
    return Record(
        topic=draw(st.sampled_from(["frames.plankton", "frames.otolith", "frames", ""])),
        partition=draw(st.integers(0, 3)),
        offset=draw(st.integers(0, 2**40)),
        key=draw(st.none() | st.binary(max_size=12)),
        value=None if roll == 19 else value,
        headers=headers,
        timestamp=draw(st.integers(0, 2**42)),
    )


def check_outcome(result: object, record: Record) -> None:
    """The prepare stage's contract for one record; shared with the fuzz target's checks."""
    if isinstance(result, Rejected):
        error = result.error
        assert isinstance(error, FrameError) and result.record is record
        assert error.stage and error.reason, error
        assert error.stage != "prepare", f"an exception reached the catch-all: {error}"
        if error.stage == "segment":  # the segmenter's own refusals are FrameErrors
            cause = error.__cause__
            assert cause is None or isinstance(cause, FrameError), f"{error} <- {cause!r}"
        if error.stage in STAGES_WITH_A_FIELD:
            assert error.field, error
        return
    assert isinstance(result, PreparedFrame), type(result)
    assert len(result.crops) == len(result.objects) or result.frame.meta.task != "plankton"
    for crop in result.crops:
        assert np.isfinite(crop).all()
        if result.frame.meta.task == "plankton":
            assert crop.shape == (INPUT_SIZE, INPUT_SIZE) and crop.dtype == np.uint8


def _one_pixel_full_frame() -> Record:
    return Record(
        topic="frames.plankton",
        partition=0,
        offset=0,
        key=b"uvp6",
        value=encode(np.full((1, 1), 200, np.uint8), "image/png"),
        headers=[
            ("content-type", b"image/png"),
            ("captured-at", b"2026-06-01T12:00:00Z"),
            ("frame-kind", b"full"),
        ],
    )


@props(400)
@given(record=records())
@example(record=_one_pixel_full_frame())  # quality's 2x downsample of 1 px: cv2.error
def test_any_record_is_prepared_or_rejected_with_a_named_stage(record):
    result = PREPARER.prepare_one(record)
    event(result.error.stage if isinstance(result, Rejected) else "prepared")
    check_outcome(result, record)


def test_a_valid_full_plankton_frame_is_prepared():
    record = Record(
        topic="frames.plankton",
        partition=0,
        offset=1,
        key=b"uvp6",
        value=SEEDS[0],
        headers=[
            ("content-type", b"image/png"),
            ("captured-at", b"2026-06-01T12:00:00Z"),
            ("frame-kind", b"full"),
        ],
    )
    result = PREPARER.prepare_one(record)
    assert isinstance(result, PreparedFrame), result
    check_outcome(result, record)
