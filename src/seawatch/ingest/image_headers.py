"""What an image value says about itself before it is decoded: its type (magic bytes) and
its layout (width, height, channels, bytes per sample), read from the file's own header.

Reading the layout first lets the decoder refuse a decompression bomb (a few hundred bytes
declaring 100000 x 100000 pixels, or 49 megapixels of 16-bit RGBA) before any allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"
URI_LIST = "text/uri-list"
IMAGE_TYPES: tuple[str, ...] = (JPEG, PNG, TIFF)
SUPPORTED_TYPES: tuple[str, ...] = (*IMAGE_TYPES, URI_LIST)
_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "image/tif": TIFF, "image/x-tiff": TIFF}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_TIFF_MAX_ENTRIES = 4096
# PNG colour type -> channels OpenCV returns (palette: BGR, or BGRA with transparency)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds on one frame value, checked before anything is allocated.

    ``max_decoded_bytes`` bounds the decoder's arrays (width x height x channels x bytes per
    sample, plus the colour copy that drops an alpha channel), so 16-bit or RGBA frames
    within the pixel limit cannot take more memory than an 8-bit one many times their size.
    """

    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 30_000
    max_decoded_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side", "max_decoded_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                msg = f"DecodeLimits.{name} must be a positive integer, got {value!r}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ImageLayout:
    """What a header declares: size, channels as decoded, and bytes per sample."""

    width: int
    height: int
    channels: int = 1
    sample_bytes: int = 1
    tile: tuple[int, int] | None = None  # a tiled TIFF's tile (width, length)

    @property
    def decoded_bytes(self) -> int:
        """Peak bytes of the decoded arrays: the decoder's own, plus the copy that keeps
        gray or BGR when the image has an alpha channel."""
        pixels = self.width * self.height * self.sample_bytes
        kept = {2: 1, 4: 3}.get(self.channels, 0)
        return pixels * (self.channels + kept)


def canonical_type(content_type: str) -> str:
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


def _png_layout(data: bytes) -> ImageLayout | None:
    # The IHDR chunk must come first: length 13, type, width, height (big endian), bit
    # depth, colour type.
    if len(data) < 26 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    return ImageLayout(width, height, _PNG_CHANNELS.get(colour, 4), 2 if depth > 8 else 1)


def _jpeg_layout(data: bytes) -> ImageLayout | None:
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
            precision, components = data[i + 2], data[i + 7] if i + 8 <= n else 3
            return ImageLayout(width, height, 1 if components == 1 else 3, 1 + (precision > 8))
        if length < 2:
            return None
        i += length
    return None


def _tiff_layout(data: bytes) -> ImageLayout | None:
    # First IFD: 256 ImageWidth, 257 ImageLength (exactly once, SHORT/LONG/LONG8, or the file
    # is refused: libtiff might read another), 258 BitsPerSample, 277 SamplesPerPixel, 322/323
    # TileWidth/TileLength (OpenCV allocates a 4-byte RGBA buffer per tile before reading it).
    if len(data) < 8 or data[:4] not in _TIFF_MAGICS:
        return None
    order = "little" if data[:2] == b"II" else "big"

    def u(at: int, size: int) -> int | None:
        return int.from_bytes(data[at : at + size], order) if at + size <= len(data) else None

    big = data[2:4] in (b"+\x00", b"\x00+")
    count_size, entry_size, value_at, field = (8, 20, 12, 8) if big else (2, 12, 8, 4)
    offset = u(8, 8) if big else u(4, 4)
    if offset is None:
        return None
    count = u(offset, count_size)
    if count is None or count > _TIFF_MAX_ENTRIES:
        return None
    values: dict[int, int] = {}
    value_sizes = {3: 2, 4: 4, 16: 8}  # SHORT, LONG, LONG8
    for k in range(count):
        entry = offset + count_size + k * entry_size
        tag, kind = u(entry, 2), u(entry + 2, 2)
        if tag is None or kind is None:
            return None
        if tag in (256, 257) and (tag in values or kind not in value_sizes):
            return None  # repeated or of a type not read here: libtiff may read another size
        if tag in (256, 257, 258, 277, 322, 323) and kind in value_sizes and tag not in values:
            size = value_sizes[kind]
            n_values = u(entry + 4, 8 if big else 4) or 1
            at = entry + value_at
            if n_values * size > field:  # the values live elsewhere; the first is enough
                at = u(at, field) or -1
            value = u(at, size) if at >= 0 else None
            if value is None:
                return None
            values[tag] = value
    if 256 not in values or 257 not in values:
        return None
    bits = values.get(258, 8)
    samples = max(1, values.get(277, 1))
    if (322 in values) != (323 in values):
        return None  # half a tile size: libtiff refuses it, and we cannot bound the buffer
    tile = (values[322], values[323]) if 322 in values else None
    return ImageLayout(values[256], values[257], samples, max(1, (bits + 7) // 8), tile)


_READERS = {JPEG: _jpeg_layout, PNG: _png_layout, TIFF: _tiff_layout}


def image_layout(data: bytes, content_type: str) -> ImageLayout | None:
    """The layout declared in the image header, read without decoding; None if unknown."""
    reader = _READERS.get(canonical_type(content_type))
    return None if reader is None else reader(bytes(data))


def image_dimensions(data: bytes, content_type: str) -> tuple[int, int] | None:
    """(width, height) declared in the image header, read without decoding; None if unknown."""
    layout = image_layout(data, content_type)
    return None if layout is None else (layout.width, layout.height)


__all__ = [
    "IMAGE_TYPES",
    "JPEG",
    "PNG",
    "SUPPORTED_TYPES",
    "TIFF",
    "URI_LIST",
    "DecodeLimits",
    "ImageLayout",
    "canonical_type",
    "image_dimensions",
    "image_layout",
    "sniff_type",
]
