"""Decoding frame values and fetching claim checks: round trips, refusals, bombs, fuzzing."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seawatch.contracts.errors import FrameError
from seawatch.ingest import decode
from seawatch.ingest.decode import (
    SUPPORTED_TYPES,
    DecodeLimits,
    decode_image,
    image_dimensions,
    resolve_claim_check,
    sniff_type,
)
from seawatch.ingest.image_headers import ImageLayout, canonical_type, image_layout

LIMITS = DecodeLimits()
EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}


def _encode(image: np.ndarray, content_type: str) -> bytes:
    ok, buf = cv2.imencode(EXT[content_type], image)
    assert ok
    return buf.tobytes()


def _image(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 255 if dtype is np.uint8 else 65535
    # A smooth ramp plus mild noise: JPEG reproduces it closely, so the check is meaningful.
    ramp = np.linspace(0, top * 0.8, shape[1])[None, :]
    base = np.broadcast_to(ramp, shape[:2]).copy()
    if len(shape) == 3:  # a different ramp per channel, so a channel swap would show
        base = np.stack([np.roll(base, 7 * c, axis=1) for c in range(shape[2])], axis=2)
    return np.clip(base + rng.normal(0, top * 0.01, shape), 0, top).astype(dtype)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    sof = data.index(b"\xff\xc0")
    out = bytearray(data)
    out[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    out[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(out)


def _tiff_header(width: int, height: int, order: str = "II", big: bool = False) -> bytes:
    e = "<" if order == "II" else ">"
    if big:
        head = order.encode() + struct.pack(e + "HHHQ", 43, 8, 0, 16)
        entries = [
            struct.pack(e + "HHQQ", tag, 16, 1, value)
            for tag, value in ((256, width), (257, height))
        ]
        return head + struct.pack(e + "Q", 2) + b"".join(entries) + struct.pack(e + "Q", 0)
    head = order.encode() + struct.pack(e + "HI", 42, 8)
    entries = [
        struct.pack(e + "HHII", tag, 4, 1, value) for tag, value in ((256, width), (257, height))
    ]
    return head + struct.pack(e + "H", 2) + b"".join(entries) + struct.pack(e + "I", 0)


@pytest.fixture
def no_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the value ever reaches a decoder (OpenCV's, or simplejpeg's)."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        pytest.fail("a decoder was called: the value was not refused before decoding")

    monkeypatch.setattr(decode.cv2, "imdecode", refuse)
    monkeypatch.setattr(decode.simplejpeg, "decode_jpeg", refuse)


# --- round trips ----------------------------------------------------------------------------

ROUND_TRIPS = [
    ("image/png", (40, 56), np.uint8),
    ("image/png", (40, 56, 3), np.uint8),
    ("image/png", (40, 56), np.uint16),
    ("image/png", (40, 56, 3), np.uint16),
    ("image/tiff", (40, 56), np.uint8),
    ("image/tiff", (40, 56, 3), np.uint8),
    ("image/tiff", (40, 56), np.uint16),
    ("image/tiff", (40, 56, 3), np.uint16),
    ("image/jpeg", (40, 56), np.uint8),
    ("image/jpeg", (40, 56, 3), np.uint8),
]


@pytest.mark.parametrize(("content_type", "shape", "dtype"), ROUND_TRIPS)
def test_round_trip_keeps_shape_depth_and_pixels(
    content_type: str, shape: tuple[int, ...], dtype: type
) -> None:
    original = _image(shape, dtype)
    decoded = decode_image(_encode(original, content_type), content_type, LIMITS)
    assert decoded.dtype == dtype
    assert decoded.shape == shape
    if content_type == "image/jpeg":
        error = np.abs(decoded.astype(int) - original.astype(int)).mean()
        assert error < 6
        if decoded.ndim == 3:  # the channel order survives: swapping channels costs far more
            assert np.abs(decoded[:, :, ::-1].astype(int) - original).mean() > 4 * error
    else:
        np.testing.assert_array_equal(decoded, original)


JPEG_VARIANTS = [
    ((48, 70), cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 0),
    ((48, 70, 3), cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 0),
    ((48, 70, 3), cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, 1),
    ((33, 17, 3), cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422, 1),
    ((33, 17, 3), cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411, 0),
]


@pytest.mark.parametrize(("shape", "sampling", "progressive"), JPEG_VARIANTS)
def test_jpeg_takes_the_turbo_path_with_opencvs_exact_pixels(
    shape: tuple[int, ...], sampling: int, progressive: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling, cv2.IMWRITE_JPEG_PROGRESSIVE]
    ok, buf = cv2.imencode(".jpg", _image(shape, np.uint8, seed=5), [*params, progressive])
    assert ok
    expected = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)

    def refuse(*_args: object, **_kwargs: object) -> None:
        pytest.fail("an 8-bit gray or YCbCr JPEG went to OpenCV, not simplejpeg")

    monkeypatch.setattr(decode.cv2, "imdecode", refuse)
    decoded = decode_image(buf.tobytes(), "image/jpeg", LIMITS)
    assert decoded.shape == shape and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, expected)


def test_a_jpeg_simplejpeg_refuses_goes_to_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(_image((20, 30, 3), np.uint8), "image/jpeg")
    seen = []
    real = decode.cv2.imdecode

    def opencv(*args: object, **kwargs: object) -> object:
        seen.append(True)
        return real(*args, **kwargs)

    def warn(*_args: object, **_kwargs: object) -> None:
        raise ValueError("libjpeg warning")

    monkeypatch.setattr(decode.cv2, "imdecode", opencv)
    monkeypatch.setattr(decode.simplejpeg, "decode_jpeg", warn)
    assert decode_image(data, "image/jpeg", LIMITS).shape == (20, 30, 3) and seen


@pytest.mark.parametrize("content_type", ["image/png", "image/tiff"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_alpha_is_dropped(content_type: str, dtype: type) -> None:
    bgra = _image((20, 30, 4), dtype)
    decoded = decode_image(_encode(bgra, content_type), content_type, LIMITS)
    assert decoded.shape == (20, 30, 3)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, bgra[:, :, :3])


@pytest.mark.parametrize(
    "content_type", ["image/jpg", "IMAGE/PNG; charset=binary", " image/tif ", "image/x-tiff"]
)
def test_content_type_parameters_case_and_aliases_are_accepted(content_type: str) -> None:
    kind = canonical_type(content_type)
    data = _encode(_image((8, 8), np.uint8), kind)
    assert decode_image(data, content_type, LIMITS).shape == (8, 8)


def test_bytearray_and_memoryview_values_are_accepted() -> None:
    data = _encode(_image((8, 9), np.uint8), "image/png")
    for value in (bytearray(data), memoryview(data)):
        assert decode_image(value, "image/png", LIMITS).shape == (8, 9)  # type: ignore[arg-type]


# --- header sniffing ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/tiff"])
def test_sniff_and_dimensions_match_encoder(content_type: str) -> None:
    data = _encode(_image((33, 47, 3), np.uint8), content_type)
    assert sniff_type(data) == content_type
    assert image_dimensions(data, content_type) == (47, 33)


@pytest.mark.parametrize("value", [b"", b"GIF89a", b"hello world", b"\xff\xd8", b"II*"])
def test_sniff_unknown_is_none(value: bytes) -> None:
    assert sniff_type(value) is None


@pytest.mark.parametrize(
    ("order", "big"), [("II", False), ("MM", False), ("II", True), ("MM", True)]
)
def test_tiff_dimensions_in_both_byte_orders_and_bigtiff(order: str, big: bool) -> None:
    data = _tiff_header(1234, 567, order, big)
    assert sniff_type(data) == "image/tiff"
    assert image_dimensions(data, "image/tiff") == (1234, 567)


def test_dimensions_of_broken_headers_are_unknown() -> None:
    png = _encode(_image((5, 5), np.uint8), "image/png")
    assert image_dimensions(png[:20], "image/png") is None
    assert image_dimensions(b"\xff\xd8\xff\xd9", "image/jpeg") is None
    assert image_dimensions(b"II*\x00\xff\xff\xff\x00", "image/tiff") is None
    assert image_dimensions(png, "text/plain") is None


def test_jpeg_dimensions_skip_large_app_segments() -> None:
    data = _encode(_image((21, 34), np.uint8), "image/jpeg")
    app = b"\xff\xe1" + (2 + 60000).to_bytes(2, "big") + b"\x00" * 60000  # big EXIF-like block
    data = data[:2] + app + data[2:]
    assert image_dimensions(data, "image/jpeg") == (34, 21)
    assert decode_image(data, "image/jpeg", LIMITS).shape == (21, 34)


# --- refusals -------------------------------------------------------------------------------


def _refused(data: bytes, content_type: str, limits: DecodeLimits = LIMITS) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_image(data, content_type, limits)
    assert info.value.stage == "decode"
    return info.value


def test_empty_value() -> None:
    error = _refused(b"", "image/png")
    assert error.field == "value"
    assert "empty" in error.reason


def test_value_over_max_bytes() -> None:
    data = _encode(_image((30, 30), np.uint8), "image/png")
    error = _refused(data, "image/png", DecodeLimits(max_bytes=len(data) - 1))
    assert error.field == "value"
    assert str(len(data)) in error.reason
    assert "text/uri-list" in error.reason  # the fix: send a claim check


@pytest.mark.parametrize("content_type", ["image/webp", "application/octet-stream", "", "  "])
def test_unsupported_or_missing_content_type_names_the_allowed_ones(content_type: str) -> None:
    error = _refused(_encode(_image((8, 8), np.uint8), "image/png"), content_type)
    assert error.field == "content-type"
    for allowed in SUPPORTED_TYPES:
        assert allowed in error.reason


def test_uri_list_must_be_resolved_first() -> None:
    error = _refused(b"file:///data/frame.png", "text/uri-list")
    assert error.field == "content-type"
    assert "resolve_claim_check" in error.reason


@pytest.mark.parametrize(
    ("actual", "declared"),
    [("image/png", "image/jpeg"), ("image/jpeg", "image/tiff"), ("image/tiff", "image/png")],
)
def test_content_type_and_magic_mismatch(actual: str, declared: str) -> None:
    error = _refused(_encode(_image((8, 8), np.uint8), actual), declared)
    assert error.field == "content-type"
    assert actual in error.reason and declared in error.reason


def test_raw_pixels_are_not_an_image() -> None:
    error = _refused(np.zeros(64, np.uint8).tobytes(), "image/png")
    assert error.field == "value"
    assert "not a JPEG, PNG or TIFF" in error.reason


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/tiff"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_values(content_type: str, keep: float) -> None:
    data = _encode(_image((64, 64, 3), np.uint8, seed=3), content_type)
    _refused(data[: int(len(data) * keep)], content_type)


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/tiff"])
def test_value_cut_inside_the_header(content_type: str) -> None:
    data = _encode(_image((64, 64), np.uint8), content_type)
    error = _refused(data[:12], content_type)
    assert error.field == "value"


def test_corrupt_png_data() -> None:
    data = bytearray(_encode(_image((64, 64), np.uint8, seed=1), "image/png"))
    idat = data.index(b"IDAT")
    data[idat + 20 : idat + 60] = b"\x55" * 40  # CRC no longer matches
    _refused(bytes(data), "image/png")


def test_jpeg_without_frame_header() -> None:
    error = _refused(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9", "image/jpeg")
    assert "header" in error.reason


def test_png_bomb_refused_before_decoding(no_decoder: None) -> None:
    data = _png_bomb(100_000, 100_000)
    assert len(data) < 200
    assert image_dimensions(data, "image/png") == (100_000, 100_000)
    error = _refused(data, "image/png")
    assert error.field == "value"
    assert "100000x100000" in error.reason
    assert "max_side" in error.reason


def test_jpeg_bomb_refused_before_decoding(no_decoder: None) -> None:
    real = _encode(_image((16, 16), np.uint8), "image/jpeg")
    error = _refused(_patch_jpeg_size(real, 65_535, 65_535), "image/jpeg")
    assert "65535x65535" in error.reason


def test_tiff_bomb_refused_before_decoding(no_decoder: None) -> None:
    _refused(_tiff_header(100_000, 100_000), "image/tiff")


def _tiled_tiff(width: int, height: int, tile: int) -> bytes:
    """An 8-bit gray tiled TIFF with one (short) tile of data: 260 bytes whatever the tile."""
    tags = [(256, width), (257, height), (258, 8), (259, 1), (262, 1), (277, 1)]
    tags += [(322, tile), (323, tile), (324, 0), (325, 16)]
    start = 8 + 2 + 12 * len(tags) + 4
    ifd = b"".join(
        struct.pack("<HHII", tag, 4, 1, start if tag == 324 else value) for tag, value in tags
    )
    return b"II*\x00" + struct.pack("<IH", 8, len(tags)) + ifd + b"\x00" * 4 + b"\x80" * 16


def test_tiff_tile_bomb_refused_before_decoding(no_decoder: None) -> None:
    # found by the fuzz target: OpenCV allocates a whole RGBA tile before reading it, so this
    # 16 x 16 image declaring 15872 x 15872 tiles took 1 GB of RSS to decode
    data = _tiled_tiff(16, 16, 15_872)
    assert image_layout(data, "image/tiff") == ImageLayout(16, 16, 1, 1, (15_872, 15_872))
    error = _refused(data, "image/tiff")
    assert "15872x15872 tiles" in error.reason and "512x512" in error.reason


def test_a_tiff_with_half_a_tile_size_is_refused_not_a_crash() -> None:
    # found by the fuzz target on the first version of the tile check (a KeyError)
    data = _tiled_tiff(16, 16, 64)
    half = data.replace(struct.pack("<HHII", 323, 4, 1, 64), struct.pack("<HHII", 999, 4, 1, 64))
    assert image_layout(half, "image/tiff") is None
    assert "no image/tiff header" in _refused(half, "image/tiff").reason


def test_a_tiff_with_ordinary_tiles_still_decodes() -> None:
    # 256-px tiles on a 300 x 200 image: the usual layout, tiles past the image edge
    image = _image((200, 300), np.uint8)
    ok, encoded = cv2.imencode(".tiff", image, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    assert ok and image_layout(encoded.tobytes(), "image/tiff").tile is None  # strips
    assert image_layout(_tiled_tiff(300, 200, 256), "image/tiff").tile == (256, 256)
    decode_image(encoded.tobytes(), "image/tiff", DecodeLimits())  # strips are untouched


def test_pixel_count_limit_with_sides_in_range(no_decoder: None) -> None:
    error = _refused(_png_bomb(20_000, 20_000), "image/png")
    assert "400000000 pixels" in error.reason
    assert "max_pixels" in error.reason


def test_decoded_bytes_limit_counts_depth_and_channels(no_decoder: None) -> None:
    # 7000 x 7000 is within the pixel limit, but as 16-bit RGBA it decodes to 392 MB, plus a
    # 294 MB copy without alpha: the campaign measured a peak of ~800 MB for such a 381 kB file
    data = _png_bomb(7000, 7000, depth=16, colour=6)
    assert image_layout(data, "image/png") == ImageLayout(7000, 7000, 4, 2)
    error = _refused(data, "image/png")
    assert "4 channel(s) of 16 bits" in error.reason and "max_decoded_bytes" in error.reason


@pytest.mark.parametrize(
    ("depth", "colour", "channels", "sample_bytes"),
    [(8, 0, 1, 1), (16, 0, 1, 2), (8, 2, 3, 1), (16, 2, 3, 2), (8, 3, 4, 1), (8, 4, 2, 1)],
)
def test_png_layout_reads_depth_and_colour_type(
    depth: int, colour: int, channels: int, sample_bytes: int
) -> None:
    layout = image_layout(_png_bomb(30, 20, depth, colour), "image/png")
    assert layout == ImageLayout(30, 20, channels, sample_bytes)


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 3), (9, 7, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_layout_matches_what_the_encoder_wrote(shape: tuple, dtype: type) -> None:
    data = _encode(_image(shape, dtype), "image/tiff")
    channels = shape[2] if len(shape) == 3 else 1
    assert image_layout(data, "image/tiff") == ImageLayout(7, 9, channels, dtype().itemsize)


def test_jpeg_layout_gray_and_colour() -> None:
    gray = _encode(_image((9, 7), np.uint8), "image/jpeg")
    colour = _encode(_image((9, 7, 3), np.uint8), "image/jpeg")
    assert image_layout(gray, "image/jpeg") == ImageLayout(7, 9, 1, 1)
    assert image_layout(colour, "image/jpeg") == ImageLayout(7, 9, 3, 1)


def test_an_8_bit_gray_frame_of_the_same_size_is_within_the_limit() -> None:
    assert ImageLayout(7000, 7000, 1, 1).decoded_bytes < DecodeLimits().max_decoded_bytes


def test_zero_sized_declaration(no_decoder: None) -> None:
    error = _refused(_png_bomb(0, 10), "image/png")
    assert "empty image" in error.reason


def test_float_tiff_is_refused_with_the_pixel_type() -> None:
    data = _encode(np.ones((6, 6), np.float32), "image/tiff")
    error = _refused(data, "image/tiff")
    assert "float32" in error.reason


def test_opencv_warnings_are_silenced_and_level_restored(capfd: pytest.CaptureFixture) -> None:
    level = cv2.utils.logging.getLogLevel()
    data = _encode(_image((64, 64, 3), np.uint8), "image/tiff")
    for content_type, value in (
        ("image/tiff", data[: len(data) // 2]),
        ("image/png", _png_bomb(4, 4)[:-12]),
    ):
        with pytest.raises(FrameError):
            decode_image(value, content_type, LIMITS)
    assert cv2.utils.logging.getLogLevel() == level
    err = capfd.readouterr().err
    assert "WARN" not in err and "ERROR" not in err


@pytest.mark.parametrize("field", ["max_bytes", "max_pixels", "max_side"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DecodeLimits(**{field: 0})


# --- fuzzing: only FrameError ever escapes ---------------------------------------------------

_SEEDS = [
    _encode(_image((12, 10, 3), np.uint8), "image/jpeg"),
    _encode(_image((12, 10), np.uint16), "image/png"),
    _encode(_image((12, 10, 3), np.uint8), "image/tiff"),
]
_TYPES = st.sampled_from([*SUPPORTED_TYPES, "image/gif", ""])


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=512), _mutated()), content_type=_TYPES)
def test_decode_never_raises_anything_but_frame_error(data: bytes, content_type: str) -> None:
    try:
        image = decode_image(data, content_type, LIMITS)
    except FrameError as error:
        assert error.stage == "decode"
    else:
        assert image.dtype in (np.uint8, np.uint16)
        assert image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)


# --- claim checks ---------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    return folder


def _png_file(path: Path) -> bytes:
    data = _encode(_image((10, 12), np.uint8), "image/png")
    path.write_bytes(data)
    return data


def _fetch_refused(value: bytes, roots: list[Path], limits: DecodeLimits = LIMITS) -> FrameError:
    with pytest.raises(FrameError) as info:
        resolve_claim_check(value, roots, limits)
    assert info.value.stage == "fetch"
    assert info.value.field == "uri"
    return info.value


def test_claim_check_allowed_file(root: Path) -> None:
    data = _png_file(root / "a b.png")  # the space is percent-encoded in the URI
    value = f"# frame from cam 3\r\n{(root / 'a b.png').as_uri()}\r\n".encode()
    content, kind = resolve_claim_check(value, [root], LIMITS)
    assert content == data
    assert kind == "image/png"
    assert decode_image(content, kind, LIMITS).shape == (10, 12)


def test_claim_check_localhost_symlinked_root_and_inner_symlink(root: Path, tmp_path: Path) -> None:
    _png_file(root / "real.png")
    (root / "alias.png").symlink_to(root / "real.png")  # stays inside the root: followed
    link_root = tmp_path / "link-to-frames"
    link_root.symlink_to(root)
    value = f"file://localhost{link_root / 'alias.png'}".encode()
    assert resolve_claim_check(value, [link_root], LIMITS)[1] == "image/png"


def test_claim_check_dotdot_traversal(root: Path, tmp_path: Path) -> None:
    _png_file(tmp_path / "secret.png")
    error = _fetch_refused(f"file://{root}/../secret.png".encode(), [root])
    assert "'..'" in error.reason


def test_claim_check_symlink_to_outside(root: Path, tmp_path: Path) -> None:
    _png_file(tmp_path / "secret.png")
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    error = _fetch_refused((root / "escape.png").as_uri().encode(), [root])
    assert "outside the allowed roots" in error.reason


def test_claim_check_sibling_with_root_prefix_is_outside(root: Path, tmp_path: Path) -> None:
    sibling = tmp_path / "frames-other"
    sibling.mkdir()
    _png_file(sibling / "a.png")
    _fetch_refused((sibling / "a.png").as_uri().encode(), [root])


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("s3://bucket/frame.png", "not supported yet"),
        ("https://example.org/frame.png", "scheme"),
        ("/plain/path.png", "scheme"),
        ("file://otherhost/data/frame.png", "host"),
        ("file:relative.png", "absolute"),
        ("file:///data/frame.png?x=1", "query"),
    ],
)
def test_claim_check_unsupported_uris(root: Path, uri: str, words: str) -> None:
    assert words in _fetch_refused(uri.encode(), [root]).reason


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nope.png", "does not exist"),
        ("dir", "not a regular file"),
        ("pipe", "not a regular file"),  # a FIFO would block a plain open()
        ("notes.txt", "not a JPEG"),
        ("big.png", "over the limit of 100"),
    ],
)
def test_claim_check_bad_targets(root: Path, name: str, words: str) -> None:
    (root / "dir").mkdir()
    os.mkfifo(root / "pipe")
    (root / "notes.txt").write_text("hello")
    (root / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    uri = (root / name).as_uri().encode()
    assert words in _fetch_refused(uri, [root], DecodeLimits(max_bytes=100)).reason


@pytest.mark.parametrize("value", [b"", b"# only a comment\n\n", b"\xff\xfe\x00bad"])
def test_claim_check_without_a_usable_uri(root: Path, value: bytes) -> None:
    _fetch_refused(value, [root])


def test_claim_check_without_roots(root: Path) -> None:
    _png_file(root / "a.png")
    assert "no claim-check roots" in _fetch_refused((root / "a.png").as_uri().encode(), []).reason
