"""Decoding frame values into arrays, and fetching claim-check frames from disk.

The order of checks is cheap-first: the value's size, its content type, its magic bytes,
the dimensions declared in its header (read without decoding, so a decompression bomb of
a few hundred bytes declaring 100000 x 100000 pixels is refused before any allocation),
and only then the decoder. Every failure is a :class:`~seawatch.errors.FrameError`, so the
pipeline sends the frame to the dead-letter topic and never dies on bad input.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from seawatch.errors import FrameError

JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"
URI_LIST = "text/uri-list"
IMAGE_TYPES: tuple[str, ...] = (JPEG, PNG, TIFF)
SUPPORTED_TYPES: tuple[str, ...] = (*IMAGE_TYPES, URI_LIST)
_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "image/tif": TIFF, "image/x-tiff": TIFF}
_ALLOWED = ", ".join(SUPPORTED_TYPES)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_TIFF_MAX_ENTRIES = 4096


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds on one frame value, checked before anything is allocated."""

    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 30_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                msg = f"DecodeLimits.{name} must be a positive integer, got {value!r}"
                raise ValueError(msg)


def _canonical_type(content_type: str) -> str:
    """``"Image/JPG; q=1"`` -> ``"image/jpeg"``: parameters dropped, case and aliases folded."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff_type(data: bytes) -> str | None:
    """The image type named by the value's magic bytes, or None when it is none of ours."""
    head = bytes(data[:8])
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head == _PNG_SIGNATURE:
        return PNG
    if head[:4] in _TIFF_MAGICS:
        return TIFF
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    # The IHDR chunk must come first: length 13, type, width, height (big endian).
    if len(data) < 24 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


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


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments up to the first SOFn, skipping garbage as libjpeg does.
    n, i = len(data), 2
    while i < n:
        while i < n and data[i] != 0xFF:
            i += 1
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return None
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        if i + 2 > n:
            return None
        length = int.from_bytes(data[i : i + 2], "big")
        if marker in _JPEG_SOF:
            if i + 7 > n:
                return None
            height = int.from_bytes(data[i + 3 : i + 5], "big")
            width = int.from_bytes(data[i + 5 : i + 7], "big")
            return width, height
        if length < 2:
            return None
        i += length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    # First IFD, tags 256 (ImageWidth) and 257 (ImageLength); classic TIFF or BigTIFF.
    if len(data) < 8 or data[:4] not in _TIFF_MAGICS:
        return None
    order = "little" if data[:2] == b"II" else "big"

    def u(at: int, size: int) -> int | None:
        return int.from_bytes(data[at : at + size], order) if at + size <= len(data) else None

    big = data[2:4] in (b"+\x00", b"\x00+")
    count_size, entry_size, value_at = (8, 20, 12) if big else (2, 12, 8)
    offset = u(8, 8) if big else u(4, 4)
    if offset is None:
        return None
    count = u(offset, count_size)
    if count is None or count > _TIFF_MAX_ENTRIES:
        return None
    sizes: dict[int, int] = {}
    value_sizes = {3: 2, 4: 4, 16: 8}  # SHORT, LONG, LONG8
    for k in range(count):
        entry = offset + count_size + k * entry_size
        tag, kind = u(entry, 2), u(entry + 2, 2)
        if tag is None or kind is None:
            return None
        if tag in (256, 257) and (tag in sizes or kind not in value_sizes):
            return None  # repeated or of a type not read here: libtiff may read another size
        if tag in (256, 257):
            value = u(entry + value_at, value_sizes[kind])
            if value is None:
                return None
            sizes[tag] = value
    if 256 in sizes and 257 in sizes:
        return sizes[256], sizes[257]
    return None


def image_dimensions(data: bytes, content_type: str) -> tuple[int, int] | None:
    """(width, height) declared in the image header, read without decoding; None if unknown."""
    readers = {JPEG: _jpeg_size, PNG: _png_size, TIFF: _tiff_size}
    reader = readers.get(_canonical_type(content_type))
    return None if reader is None else reader(bytes(data))


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
    declared = _canonical_type(content_type)
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


def _check_dimensions(size: tuple[int, int] | None, kind: str, limits: DecodeLimits) -> None:
    if size is None:
        msg = f"no {kind} header with the image size was found; the file is truncated or corrupt"
        raise _fail(msg)
    width, height = size
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
    _check_dimensions(image_dimensions(data, kind), kind, limits)
    if kind == PNG:
        _check_png_chunks(data)
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


def _fetch_fail(reason: str) -> FrameError:
    return FrameError(stage="fetch", reason=reason, field="uri")


def _first_uri(data: bytes) -> str:
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"the claim-check value is not UTF-8 ({exc.reason} at byte {exc.start})"
        raise _fetch_fail(msg) from exc
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    msg = f"the {URI_LIST} value holds no URI; send one file:// URI per line"
    raise _fetch_fail(msg)


def _local_path(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unbalanced '[' or ']' in the host: "Invalid IPv6 URL"
        raise _fetch_fail(f"{uri!r} is not a valid URI ({exc}); send a file:// URI") from exc
    scheme = parts.scheme.lower()
    if scheme == "s3":
        msg = f"s3:// claim checks are not supported yet (got {uri!r}); stage the frame on a "
        msg += "shared file system and send a file:// URI"
        raise _fetch_fail(msg)
    if scheme != "file":
        msg = f"URI scheme {parts.scheme or '(none)'!r} is not supported in {uri!r}; use file://"
        raise _fetch_fail(msg)
    if parts.netloc not in ("", "localhost"):
        msg = f"file URI {uri!r} names host {parts.netloc!r}; only local files (file:///path)"
        raise _fetch_fail(msg)
    if parts.query or parts.fragment:
        msg = f"file URI {uri!r} has a query or fragment; percent-encode '?' and '#' in paths"
        raise _fetch_fail(msg)
    path = unquote(parts.path)
    if "\x00" in path or not path.startswith("/"):
        msg = f"file URI {uri!r} must hold an absolute path without NUL bytes"
        raise _fetch_fail(msg)
    if ".." in PurePosixPath(path).parts:
        msg = f"file URI {uri!r} contains '..'; send the canonical path under an allowed root"
        raise _fetch_fail(msg)
    return path


def _inside(path: Path, allowed_roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(Path(root).resolve()) for root in allowed_roots)


def resolve_claim_check(
    data: bytes, allowed_roots: Sequence[Path], limits: DecodeLimits
) -> tuple[bytes, str]:
    """Read the file a ``text/uri-list`` value points to; return its bytes and sniffed type.

    Only ``file://`` URIs whose real path (symlinks resolved) lies under one of
    ``allowed_roots`` are read. Raises FrameError(stage="fetch", field="uri").
    """
    uri = _first_uri(data)
    path = _local_path(uri)
    if not allowed_roots:
        msg = f"no claim-check roots are allowed, so {uri!r} cannot be read; configure them"
        raise _fetch_fail(msg)
    real = Path(os.path.realpath(path))
    if not _inside(real, allowed_roots):
        roots = ", ".join(str(root) for root in allowed_roots)
        msg = f"{uri!r} resolves to {real}, outside the allowed roots ({roots}); "
        msg += "store frames under an allowed root or add its folder to the roots"
        raise _fetch_fail(msg)
    try:
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            msg = f"{real} is not a regular file; a claim check must name an image file"
            raise _fetch_fail(msg)
        # O_NOFOLLOW: the checked path cannot be swapped for a symlink before the open.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                msg = f"{real} is not a regular file; a claim check must name an image file"
                raise _fetch_fail(msg)
            if info.st_size > limits.max_bytes:
                msg = f"{real} is {info.st_size} bytes, over the limit of {limits.max_bytes}; "
                msg += "downsample or tile the frame, or raise max_bytes"
                raise _fetch_fail(msg)
            content = handle.read(limits.max_bytes + 1)
    except FileNotFoundError as exc:
        msg = f"{real} (from {uri!r}) does not exist; the producer must write it before sending"
        raise _fetch_fail(msg) from exc
    except OSError as exc:
        msg = f"{real} cannot be read ({exc.strerror or exc}); check its permissions"
        raise _fetch_fail(msg) from exc
    if len(content) > limits.max_bytes:
        msg = f"{real} grew past the limit of {limits.max_bytes} bytes while being read"
        raise _fetch_fail(msg)
    kind = sniff_type(content)
    if kind is None:
        msg = f"{real} is not a JPEG, PNG or TIFF image (first bytes {content[:8].hex()})"
        raise _fetch_fail(msg)
    return content, kind


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
