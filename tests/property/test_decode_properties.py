"""Properties of decoding: exact round trips, header sizes that match the decoder, and only
FrameError(stage="decode") (never an array over the limits) for damaged files."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from seawatch.contracts.errors import FrameError
from seawatch.ingest.decode import (
    DecodeLimits,
    decode_image,
    image_dimensions,
    resolve_claim_check,
    sniff_type,
)
from tests.property.strategies import encode, images, mutated, props

LIMITS = DecodeLimits()
JPEG_EXACTISH = (
    cv2.IMWRITE_JPEG_QUALITY, 100,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
)  # fmt: skip


def _expected(image: np.ndarray) -> np.ndarray:
    return image[:, :, :3] if image.ndim == 3 else image  # BGRA decodes to BGR


@props(150)
@given(image=images(), content_type=st.sampled_from(["image/png", "image/tiff"]))
def test_png_and_tiff_round_trip_exactly(image, content_type):
    decoded = decode_image(encode(image, content_type), content_type, LIMITS)
    assert decoded.dtype == image.dtype
    np.testing.assert_array_equal(decoded, image)


@props(40)
@given(image=images(), alpha=st.integers(0, 65535))
def test_png_alpha_is_dropped_and_the_colour_kept(image, alpha):
    bgr = image if image.ndim == 3 else np.stack([image] * 3, axis=2)
    alpha = min(alpha, np.iinfo(bgr.dtype).max)
    bgra = np.concatenate([bgr, np.full((*bgr.shape[:2], 1), alpha, bgr.dtype)], axis=2)
    decoded = decode_image(encode(bgra, "image/png"), "image/png", LIMITS)
    np.testing.assert_array_equal(decoded, bgr)


@props(100)
@given(image=images(dtypes=(np.uint8,)), progressive=st.booleans())
def test_jpeg_round_trips_within_tolerance(image, progressive):
    params = (*JPEG_EXACTISH, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive))
    decoded = decode_image(encode(image, "image/jpeg", params), "image/jpeg", LIMITS)
    assert decoded.dtype == np.uint8 and decoded.shape == image.shape
    error = np.abs(decoded.astype(int) - image.astype(int))
    assert error.mean() <= 4 and error.max() <= 48


@props(120)
@given(
    image=images(max_side=40),
    content_type=st.sampled_from(["image/png", "image/tiff", "image/jpeg"]),
    alias=st.booleans(),
)
def test_header_dimensions_equal_the_decoded_size(image, content_type, alias):
    if content_type == "image/jpeg":
        image = (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image
    data = encode(image, content_type)
    declared = {"image/jpeg": "Image/JPG; q=1", "image/tiff": "image/x-tiff"}.get(content_type)
    width, height = image.shape[1], image.shape[0]
    assert image_dimensions(data, declared if alias and declared else content_type) == (
        width,
        height,
    )


# --- damaged files --------------------------------------------------------------------------


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(7)
    gray16 = rng.integers(0, 65536, (12, 10), dtype=np.uint16)
    bgr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    return [
        encode(bgr, "image/jpeg"),
        encode(bgr[..., 0], "image/jpeg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        encode(gray16, "image/png"),
        encode(bgr, "image/png"),
        encode(bgr, "image/tiff"),
        encode(gray16, "image/tiff"),
    ]


SEEDS = _seeds()
# Tight limits around the seeds' 10x12: a damaged header that declares 10x12 while the
# decoder builds something larger would show up as an array over these.
TIGHT = DecodeLimits(max_bytes=4096, max_pixels=16 * 16, max_side=16)


def _decode_with_opencv(data: bytes) -> np.ndarray | None:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    finally:
        cv2.utils.logging.setLogLevel(level)


def _check_outcome(data: bytes, content_type: str, limits: DecodeLimits) -> None:
    try:
        image = decode_image(data, content_type, limits)
    except FrameError as error:
        assert error.stage == "decode" and error.field in ("value", "content-type"), error
        assert error.reason
    else:
        assert image.dtype in (np.uint8, np.uint16)
        assert image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
        height, width = image.shape[:2]
        assert 0 < width <= limits.max_side and 0 < height <= limits.max_side
        assert width * height <= limits.max_pixels
        assert len(data) <= limits.max_bytes


@props(500)
@given(
    data=st.one_of(mutated(SEEDS), st.binary(max_size=256)),
    content_type=st.sampled_from(["image/jpeg", "image/png", "image/tiff", "image/jpg", ""]),
)
def test_damaged_files_decode_within_the_limits_or_fail_with_a_decode_error(data, content_type):
    _check_outcome(data, content_type, TIGHT)


@props(300)
@given(data=mutated(SEEDS))
def test_a_declared_size_is_the_size_the_decoder_builds(data):
    kind = sniff_type(data)
    try:  # decode_image, not bare OpenCV: its cheap checks keep damaged PNGs from taking GBs
        image = decode_image(data, kind or "", LIMITS)
    except FrameError:
        return
    assert (image.shape[1], image.shape[0]) == image_dimensions(data, kind)


# --- TIFF directories built entry by entry: repeated, odd-typed and multi-valued size tags ---

_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i"}  # BYTE SHORT LONG SBYTE SSHORT SLONG


def _tiff(order: str, width: int, height: int, size_entries: list, pixels: bytes) -> bytes:
    """An 8-bit gray one-strip TIFF with the given ImageWidth/ImageLength entries."""
    others = [(258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (277, 3, 1, 1), (278, 4, 1, height)]
    count = len(size_entries) + len(others) + 2
    pixels_at = 8 + 2 + 12 * count + 4
    strips = [(273, 4, 1, pixels_at), (279, 4, 1, width * height)]
    entries = sorted(size_entries + others + strips, key=lambda e: e[0])
    body = b"".join(_entry(order, *entry) for entry in entries)
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    ifd = struct.pack(order + "H", count) + body + struct.pack(order + "I", 0)
    return head + ifd + pixels + b"\x00" * 64


def _entry(order: str, tag: int, kind: int, count: int, value: int) -> bytes:
    code = _TYPES[kind]
    if count * struct.calcsize(code) > 4:  # the values live elsewhere: point at the header
        return struct.pack(order + "HHII", tag, kind, count, 8)
    packed = struct.pack(order + code * count, *([value] * count)).ljust(4, b"\x00")
    return struct.pack(order + "HHI", tag, kind, count) + packed


@st.composite
def tiff_files(draw: st.DrawFn) -> bytes:
    """TIFFs whose size tags are drawn (repeated, odd types, several values), not written
    by a library."""
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    size_entries = []
    for tag, true in ((256, width), (257, height)):
        for _ in range(draw(st.integers(1, 3))):  # usually once, sometimes repeated
            kind = draw(st.sampled_from([3, 3, 4, 4, *_TYPES]))
            value = draw(st.sampled_from([true, true, 8, 40, 1]))
            count = draw(st.sampled_from([1, 1, 1, 2]))
            size_entries.append((tag, kind, count, value))
    pixels = draw(st.binary(min_size=width * height, max_size=width * height))
    return _tiff(draw(st.sampled_from(["<", ">"])), width, height, size_entries, pixels)


# 40x40 pixels, each size tag twice (40 then 1): the reader took the last, libtiff the first;
# then a first ImageWidth typed SLONG, which the reader skipped and libtiff reads.
_REPEATED_SIZE = [(256, 3, 1, 40), (256, 3, 1, 1), (257, 3, 1, 40), (257, 3, 1, 1)]
_ODD_TYPED_FIRST = [(256, 9, 1, 40), (256, 3, 1, 1), (257, 3, 1, 40)]


@props(300)
@given(data=tiff_files())
@example(data=_tiff("<", 40, 40, _REPEATED_SIZE, b"\x80" * 1600))
@example(data=_tiff(">", 40, 40, _REPEATED_SIZE, b"\x80" * 1600))
@example(data=_tiff("<", 40, 40, _ODD_TYPED_FIRST, b"\x80" * 1600))
@example(data=_tiff("<", 40, 40, [(256, 4, 2, 40), (257, 3, 1, 40)], b"\x80" * 1600))
def test_tiff_size_tags_are_read_as_libtiff_reads_them_or_refused(data):
    size = image_dimensions(data, "image/tiff")
    image = _decode_with_opencv(data)
    if size is not None and image is not None:
        assert (image.shape[1], image.shape[0]) == size
    _check_outcome(data, "image/tiff", TIGHT)


# --- claim checks -----------------------------------------------------------------------

_URI_PARTS = st.sampled_from(["file://", "file:///", "s3://", "http://", "//", "[", "]", "%", "?"])
uris = st.lists(_URI_PARTS | st.text(max_size=8), max_size=6).map("".join)


@props(300)
@given(value=st.one_of(uris.map(str.encode), st.binary(max_size=40)))
@example(value=b"file://]/frames/a.png")  # urlsplit raised ValueError: Invalid IPv6 URL
@example(value=b"file://[::1/frames/a.png")
def test_any_claim_check_value_is_read_or_refused_at_fetch(value):
    try:
        resolve_claim_check(value, [Path("/nonexistent-seawatch-root")], LIMITS)
    except FrameError as error:
        assert error.stage == "fetch" and error.field == "uri" and error.reason
    else:
        raise AssertionError("nothing can be read under a root that does not exist")


# --- PNG chunk lengths: OpenCV allocates what a chunk declares before reading it ----------


def _png_chunk_starts(data: bytes) -> list[int]:
    starts, at = [], 8
    while at + 8 <= len(data):
        starts.append(at)
        at += 12 + int.from_bytes(data[at : at + 4], "big")
    return starts


_PNG = encode(np.full((24, 20), 200, np.uint8), "image/png")


@props(100)
@given(chunk=st.integers(0, len(_png_chunk_starts(_PNG)) - 1), length=st.integers(0, 2**32 - 1))
@example(chunk=1, length=0xFFFF0054)  # found by the fuzzer: 141 bytes made the decoder take 4 GB
def test_a_png_chunk_longer_than_the_file_is_refused_before_decoding(chunk, length):
    at = _png_chunk_starts(_PNG)[chunk]
    data = _PNG[:at] + length.to_bytes(4, "big") + _PNG[at + 4 :]
    try:
        decode_image(data, "image/png", LIMITS)
    except FrameError as error:
        if at + 8 + length > len(data):  # refused by the cheap checks, not by the decoder
            assert "decoder" not in error.reason, error


def test_an_iend_before_the_image_data_does_not_end_the_chunk_check():
    # Found by the fuzzer: IDAT renamed IEND, then a chunk declaring 2 GB, which OpenCV read.
    at = _png_chunk_starts(_PNG)[1]  # the IDAT chunk: length, type, data, CRC
    data = _PNG[: at + 4] + b"IEND" + _PNG[at + 8 : -12] + b"\x7d" * 4 + b"IDAT" + b"x" * 16
    with pytest.raises(FrameError, match="past the end"):
        decode_image(data, "image/png", LIMITS)
