"""Decoding frame values into arrays, and fetching claim-check frames from disk.

The order of checks is cheap-first: the value's size, its content type, its magic bytes,
the dimensions declared in its header (read without decoding, so a decompression bomb of
a few hundred bytes declaring 100000 x 100000 pixels is refused before any allocation),
and only then the decoder. Every failure is a :class:`~seawatch.contracts.errors.FrameError`, so the
pipeline sends the frame to the dead-letter topic and never dies on bad input.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import simplejpeg

from seawatch.contracts.errors import FrameError
from seawatch.ingest.claim_check import resolve_claim_check
from seawatch.ingest.image_headers import (
    IMAGE_TYPES,
    JPEG,
    PNG,
    SUPPORTED_TYPES,
    URI_LIST,
    DecodeLimits,
    ImageLayout,
    canonical_type,
    image_dimensions,
    image_layout,
    sniff_type,
)

_ALLOWED = ", ".join(SUPPORTED_TYPES)


def _check_png_chunks(data: bytes) -> None:
    # OpenCV's PNG reader allocates a chunk's declared length before reading it, so a 150-byte
    # file declaring a 4 GB chunk costs 4 GB: refuse a chunk that runs past the end first.
    # It reads on past an IEND that comes before any IDAT, so only a later IEND ends the walk.
    at, seen_data = 8, False
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if at + 8 + length > len(data):
            msg = (
                f"PNG chunk {kind!r} at byte {at} declares {length} bytes, past the end of the "
                f"{len(data)}-byte value; the file is truncated or corrupt"
            )
            raise _fail(msg)
        if kind == b"IEND" and seen_data:
            return
        seen_data = seen_data or kind == b"IDAT"
        at += 12 + length


class _QuietOpenCV:
    """Silences OpenCV's log (libpng/libtiff warnings on corrupt data) while decoding.

    The log level is process-wide, so concurrent decoders share one reference count and the
    previous level comes back when the last of them leaves. libjpeg and libpng print a few
    messages straight to stderr, past OpenCV's log; silencing those would mean redirecting
    the process's stderr, which a daemon must not do, so they stay.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None
        self._logging = getattr(getattr(cv2, "utils", None), "logging", None)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._logging is None:
            yield
            return
        with self._lock:
            if self._depth == 0:
                self._saved = self._logging.getLogLevel()
                self._logging.setLogLevel(self._logging.LOG_LEVEL_SILENT)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    self._logging.setLogLevel(self._saved)


_quiet_opencv = _QuietOpenCV()


def _fail(reason: str, field: str = "value") -> FrameError:
    return FrameError(stage="decode", reason=reason, field=field)


def _check_type(data: bytes, content_type: str) -> str:
    if not content_type or not content_type.strip():
        msg = f"the content-type header is missing; set it to one of: {_ALLOWED}"
        raise _fail(msg, "content-type")
    declared = canonical_type(content_type)
    if declared == URI_LIST:
        msg = (
            f"content-type {URI_LIST} is a claim-check reference, not an image; "
            "resolve it with resolve_claim_check before decoding"
        )
        raise _fail(msg, "content-type")
    if declared not in IMAGE_TYPES:
        msg = f"content-type {content_type!r} is not supported; use one of: {_ALLOWED}"
        raise _fail(msg, "content-type")
    sniffed = sniff_type(data)
    if sniffed is None:
        msg = (
            f"the value is not a JPEG, PNG or TIFF image (first bytes {bytes(data[:8]).hex()}); "
            f"it was declared {declared}; send the encoded image file, not raw pixels"
        )
        raise _fail(msg)
    if sniffed != declared:
        msg = (
            f"content-type says {declared} but the bytes are {sniffed}; "
            f"set content-type to {sniffed} or send a {declared} file"
        )
        raise _fail(msg, "content-type")
    return declared


def _check_layout(layout: ImageLayout | None, kind: str, limits: DecodeLimits) -> None:
    if layout is None:
        msg = f"no {kind} header with the image size was found; the file is truncated or corrupt"
        raise _fail(msg)
    width, height = layout.width, layout.height
    if width <= 0 or height <= 0:
        msg = f"the {kind} header declares an empty image ({width}x{height}); the file is corrupt"
        raise _fail(msg)
    if width > limits.max_side or height > limits.max_side:
        msg = (
            f"declared size {width}x{height} has a side over the limit of {limits.max_side} px; "
            "tile or downsample the frame, or raise max_side"
        )
        raise _fail(msg)
    if width * height > limits.max_pixels:
        msg = (
            f"declared size {width}x{height} = {width * height} pixels is over the limit of "
            f"{limits.max_pixels}; tile or downsample the frame, or raise max_pixels"
        )
        raise _fail(msg)
    if layout.tile is not None:
        # a tile never needs to be larger than the image rounded up to TIFF's 16-px grid
        # (512 px allowed for small images); OpenCV allocates tile x 4 bytes before reading:
        # a 260-byte 16 x 16 TIFF declaring 15872 x 15872 tiles took 1 GB (fuzzing, 2026-12-06)
        tile_w, tile_h = layout.tile
        most_w, most_h = (max(512, -(-side // 16) * 16) for side in (width, height))
        if not (0 < tile_w <= most_w and 0 < tile_h <= most_h):
            msg = (
                f"the TIFF declares {tile_w}x{tile_h} tiles for a {width}x{height} image; tiles "
                f"of at most {most_w}x{most_h} are accepted (the decoder allocates a whole tile); "
                "write the file with smaller tiles or in strips"
            )
            raise _fail(msg)
    if layout.decoded_bytes > limits.max_decoded_bytes:
        mib = 1024 * 1024
        msg = (
            f"declared {width}x{height} with {layout.channels} channel(s) of "
            f"{8 * layout.sample_bytes} bits decodes to {layout.decoded_bytes // mib} MiB, over "
            f"the limit of {limits.max_decoded_bytes // mib} MiB; send 8-bit or fewer channels, "
            "tile the frame, or raise max_decoded_bytes"
        )
        raise _fail(msg)


def _normalise(image: np.ndarray) -> np.ndarray:
    # uint8/uint16, 2-D gray or HxWx3 BGR; alpha dropped, depth kept.
    if image.dtype not in (np.uint8, np.uint16):
        msg = f"pixel type {image.dtype} is not supported; store frames as 8- or 16-bit integers"
        raise _fail(msg)
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        elif channels in (1, 2):  # gray, or gray + alpha
            image = np.ascontiguousarray(image[:, :, 0])
        elif channels != 3:
            msg = f"{channels} channels are not supported; use gray, BGR or BGRA"
            raise _fail(msg)
    elif image.ndim != 2:
        msg = f"decoded array has shape {image.shape}; expected a 2-D or 3-D image"
        raise _fail(msg)
    return image


_TURBO_COLOURSPACES = {"Gray": "GRAY", "YCbCr": "BGR"}  # JPEG colour space -> decoded as


def _decode_jpeg_turbo(data: bytes) -> np.ndarray | None:
    """An 8-bit gray or YCbCr JPEG decoded by simplejpeg (libjpeg-turbo without OpenCV's
    overhead: 48 against 66 us for a 160 x 64 fish frame on this VM, the same pixels); None
    for anything else, or on any libjpeg error or warning, and OpenCV decides as before."""
    try:
        colourspace = simplejpeg.decode_jpeg_header(data)[2]
        if colourspace not in _TURBO_COLOURSPACES:
            return None
        image = simplejpeg.decode_jpeg(data, _TURBO_COLOURSPACES[colourspace], strict=True)
    except ValueError:
        return None
    return image[:, :, 0] if image.shape[2] == 1 else image


def decode_image(data: bytes, content_type: str, limits: DecodeLimits) -> np.ndarray:
    """Decode a JPEG/PNG/TIFF value to uint8 or uint16, 2-D gray or HxWx3 BGR.

    Raises FrameError(stage="decode") naming the rule, the value and the fix.
    """
    data = bytes(data)
    if len(data) == 0:
        raise _fail("the value is empty (0 bytes); the producer must send the encoded image")
    if len(data) > limits.max_bytes:
        msg = (
            f"the value is {len(data)} bytes, over the limit of {limits.max_bytes}; send large "
            f"frames as a claim check ({URI_LIST} with a file:// URI) or raise max_bytes"
        )
        raise _fail(msg)
    kind = _check_type(data, content_type)
    _check_layout(image_layout(data, kind), kind, limits)
    if kind == PNG:
        _check_png_chunks(data)
    elif kind == JPEG and (image := _decode_jpeg_turbo(data)) is not None:
        return image
    try:
        with _quiet_opencv():
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        msg = f"the {kind} decoder failed ({detail}); the file is corrupt or truncated"
        raise _fail(msg) from exc
    if image is None:
        msg = f"the {kind} decoder could not read the value; the file is corrupt or truncated"
        raise _fail(msg)
    return _normalise(image)


__all__ = [
    "IMAGE_TYPES",
    "SUPPORTED_TYPES",
    "URI_LIST",
    "DecodeLimits",
    "decode_image",
    "image_dimensions",
    "resolve_claim_check",
    "sniff_type",
]
