"""Hostile frame messages for the campaign test: each kind of damage a link, an instrument
or an attacker can put into a frame message, with the DLQ verdict the daemon must reach.

Every message carries its own ``x-campaign-id`` header (it travels to the DLQ with the
original headers) and a unique ``captured-at``, so each DLQ record can be matched back to
the message it came from. ``stage``/``field`` are what the DLQ record's ``error-stage`` and
``error`` (``[stage:field] reason``) must say; both are None for the *odd but valid* frames
(16-bit, BGRA, claim checks inside the root...) that must be stored, not rejected.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

INSTRUMENT = "hostile-01"  # every bad message's instrument: none may reach the store
ODD_INSTRUMENT = "oddity-01"  # the odd-but-valid ones
CAMPAIGN_HEADER = "x-campaign-id"


@dataclass(frozen=True, slots=True)
class HostileMessage:
    """One message to publish and the verdict expected for it (stage None: must be stored)."""

    kind: str
    campaign_id: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    stage: str | None
    field: str | None
    uid: str | None = None  # instrument@captured_ns of a valid one

    @property
    def bad(self) -> bool:
        return self.stage is not None


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What a kind builds: the value, header changes and the expected DLQ stage and field."""

    value: bytes | None
    stage: str | None
    field: str | None
    content_type: str | None = "image/png"
    set_headers: tuple[tuple[str, bytes], ...] = ()
    drop_headers: tuple[str, ...] = ()
    key: bytes | None = INSTRUMENT.encode()
    captured_at: bytes | None = None  # None: the message's unique epoch ns


# -- encoded images ---------------------------------------------------------------------


def _roi(rng: np.random.Generator) -> np.ndarray:
    from seawatch.models.plankton.synthetic import render_roi, sample_taxa

    return render_roi(sample_taxa(rng, 1)[0], rng)


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    if not ok:  # pragma: no cover - OpenCV encodes these shapes and depths
        raise RuntimeError(f"OpenCV could not encode {image.shape} {image.dtype} as {ext}")
    return data.tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, color_type: int, idat: bytes, depth: int = 8) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_gray_alpha(gray: np.ndarray) -> bytes:
    """A valid 2-channel (gray + alpha) PNG; OpenCV cannot write those, so by hand."""
    h, w = gray.shape
    rows = np.dstack([gray, np.full_like(gray, 255)]).reshape(h, w * 2)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    return _png(w, h, 4, zlib.compress(raw))


def _png_bomb_under_limits(side: int) -> bytes:
    """A real decompression bomb that passes the size limits: side x side RGB zeros, its
    zlib stream cut short so the decoder allocates the frame and then fails."""
    row = b"\x00" * (1 + 3 * side)
    compressor = zlib.compressobj(9)
    stream = b"".join(compressor.compress(row) for _ in range(side // 4))
    return _png(side, side, 2, stream)  # no flush: the stream ends mid-way


def _png_chunk_length_bomb(index: int) -> bytes:
    """A 64 x 64 PNG whose next chunk declares ~4 GB (or 2 GB after an early IEND): the
    reader allocates what a chunk declares before reading it."""
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
    early_end = _png_chunk(b"IEND", b"") if index % 2 else b""
    length = 0x7FFFFFFF if index % 2 else 0xFFFF0054
    return b"\x89PNG\r\n\x1a\n" + ihdr + early_end + struct.pack(">I", length) + b"IDAT" + bytes(16)


def _jpeg_bomb(width: int, height: int) -> bytes:
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def _tiff_bomb(width: int, height: int, *, big: bool = False) -> bytes:
    if big:  # BigTIFF: 8-byte offsets, 20-byte entries, LONG8 values
        entries = [(256, 16, 1, width), (257, 16, 1, height), (258, 3, 1, 8)]
        ifd = struct.pack("<Q", len(entries))
        ifd += b"".join(struct.pack("<HHQQ", *e) for e in entries) + struct.pack("<Q", 0)
        return b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + ifd
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (277, 3, 1, 1)]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def _tiff_without_size() -> bytes:
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 258, 3, 1, 8) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def _flip_png_idat(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    start = out.index(b"IDAT") + 4
    end = start + int.from_bytes(out[start - 8 : start - 4], "big")
    for _ in range(8):
        out[int(rng.integers(start, end))] ^= 1 << int(rng.integers(8))
    return bytes(out)


def _break_jpeg_tables(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite the Huffman tables (DHT) with garbage: no decoder can read the scan."""
    out = bytearray(data)
    at = out.index(b"\xff\xc4")
    length = int.from_bytes(out[at + 2 : at + 4], "big")
    out[at + 4 : at + 2 + length] = bytes(rng.integers(0xF0, 0x100, length - 2, dtype=np.uint8))
    return bytes(out)


# -- the claim-check tree ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Files:
    root: Path
    good: Path
    inner_link: Path
    outer_link: Path
    outside_file: Path
    folder: Path
    fifo: Path
    missing: Path
    not_image: Path
    empty: Path
    truncated: Path
    too_big: Path


def _claim_check_files(root: Path, outside: Path, png: bytes, big: bytes) -> _Files:
    root, outside = root.resolve(), outside.resolve()
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    files = _Files(
        root=root,
        good=root / "good.png",
        inner_link=root / "good-link.png",
        outer_link=root / "escape.png",
        outside_file=outside / "secret.png",
        folder=root / "a-folder.png",
        fifo=root / "fifo.png",
        missing=root / "never-written.png",
        not_image=root / "notes.png",
        empty=root / "empty.png",
        truncated=root / "truncated.png",
        too_big=root / "too-big.png",
    )
    files.good.write_bytes(png)
    files.outside_file.write_bytes(png)
    for link, target in ((files.inner_link, files.good), (files.outer_link, files.outside_file)):
        if not link.is_symlink():
            link.symlink_to(target)
    files.folder.mkdir(exist_ok=True)
    if not files.fifo.exists():
        os.mkfifo(files.fifo)
    files.not_image.write_text("not an image: the operator's notes\n")
    files.empty.write_bytes(b"")
    files.truncated.write_bytes(png[: len(png) // 2])
    files.too_big.write_bytes(big)
    return files


def _uri(path: Path | str) -> bytes:
    return f"file://{path}\n".encode()


# -- the kinds --------------------------------------------------------------------------

Kind = Callable[[np.random.Generator, dict, int], _Verdict]
_CUTS = (0.05, 0.3, 0.5, 0.7, 0.9, 0.98)


def _value(stage: str = "decode", field: str = "value"):
    return {"stage": stage, "field": field}


def _kinds(assets: dict, files: _Files) -> dict[str, Kind]:
    jpeg, png, tiff = assets["jpeg"], assets["png"], assets["tiff"]
    now = time.time_ns()

    def cut(data: bytes, i: int) -> bytes:
        return data[: max(1, int(len(data) * _CUTS[i % len(_CUTS)]))]

    def header(name: str, value: bytes, field: str | None = None) -> _Verdict:
        return _Verdict(png, "headers", field or name, set_headers=((name, value),))

    def numeric(rng, _a, i) -> _Verdict:
        name, bad = [
            ("lat", b"nan"), ("lat", b"91"), ("lat", b"-inf"), ("lat", b"north"),
            ("lon", b"180.5"), ("lon", b"NaN"), ("lon", b"1e400"),
            ("depth-m", b"-50"), ("depth-m", b"12000"), ("depth-m", b"inf"),
            ("volume-ml", b"0"), ("volume-ml", b"-1"), ("volume-ml", b"nan"),
            ("pixel-size-um", b"0"), ("pixel-size-um", b"1e9"), ("pixel-size-um", b"0x10"),
        ][i % 16]  # fmt: skip
        return header(name, bad)

    def non_utf8(rng, _a, i) -> _Verdict:
        name = ("cruise", "station", "sample-id", "lat", "instrument", "captured-at")[i % 6]
        return header(name, b"st\xff\xfe-" + bytes([0x80 + i % 64]))

    def too_long(rng, _a, i) -> _Verdict:
        name = ("cruise", "station", "sample-id", "specimen-id", "instrument")[i % 5]
        return header(name, b"x" * (257 + i % 500))

    def captured(value: bytes) -> _Verdict:
        return _Verdict(png, "headers", "captured-at", captured_at=value)

    def bad_time(rng, _a, i) -> _Verdict:
        ahead = now + 2 * 86_400 * 10**9 + i
        return captured(
            [
                b"1850-06-01T12:00:00Z",
                b"3000-01-01T00:00:00Z",
                str(ahead).encode(),
                b"-99999999999999999999",
                b"9999-12-31T23:59:59-23:59",
                b"0001-01-01T00:00:00+23:59",
            ][i % 6]
        )

    def malformed_time(rng, _a, i) -> _Verdict:
        return captured(
            [b"yesterday", b"2026-05-01T00:00:00", b"2026-13-45T00:00:00Z", b"--5", b"12:00",
             b"\xc2\xb2", b"NaN", b"2026-05-01 25:61:00+00:00"][i % 8]
        )  # fmt: skip

    def claim(value: bytes, stage: str = "fetch", field: str = "uri") -> _Verdict:
        return _Verdict(value, stage, field, content_type="text/uri-list")

    root, outside = files.root, files.outside_file
    bad_uris = [
        _uri(f"{root}/../{outside.parent.name}/{outside.name}"),
        _uri(f"{root}/%2e%2e/{outside.parent.name}/{outside.name}"),
        _uri(outside),
        _uri(files.outer_link),
        _uri(files.folder),
        _uri(files.fifo),
        _uri(files.missing),
        _uri(files.not_image),
        _uri(files.empty),
        _uri(files.too_big),
        b"http://example.org/frame.png\n",
        b"s3://bucket/frame.png\n",
        b"good.png\n",
        f"file://fileserver{files.good}\n".encode(),
        f"file://{files.good}?v=1\n".encode(),
        f"file://{root}/good%00.png\n".encode(),
        b"\n# only a comment\n\n",
        b"file:///\xff\xfe/frame.png\n",
        b"file:///etc/passwd\n",
        b"file:///proc/self/environ\n",
    ]

    return {
        # the value itself
        "truncated-jpeg": lambda r, a, i: _Verdict(
            cut(jpeg, i), **_value(), content_type="image/jpeg"
        ),
        "truncated-png": lambda r, a, i: _Verdict(cut(png, i), **_value()),
        "truncated-tiff": lambda r, a, i: _Verdict(
            cut(tiff, i), **_value(), content_type="image/tiff"
        ),
        "bitflipped-png": lambda r, a, i: _Verdict(_flip_png_idat(png, r), **_value()),
        "garbled-jpeg-tables": lambda r, a, i: _Verdict(
            _break_jpeg_tables(jpeg, r), **_value(), content_type="image/jpeg"
        ),
        "random-bytes": lambda r, a, i: _Verdict(
            bytes(r.integers(0, 256, 64 + i % 2000, dtype=np.uint8)),
            **_value(),
            content_type=("image/jpeg", "image/png", "image/tiff")[i % 3],
        ),
        "zero-length-value": lambda r, a, i: _Verdict(b"", "headers", "value"),
        "tombstone-value": lambda r, a, i: _Verdict(None, "headers", "value"),
        "png-bomb": lambda r, a, i: _Verdict(
            _png((100_000, 40_000, 20_000)[i % 3], (100_000, 40_000, 20_000)[i % 3], 2, b""),
            **_value(),
        ),
        "png-chunk-length-bomb": lambda r, a, i: _Verdict(_png_chunk_length_bomb(i), **_value()),
        "png-bomb-under-limits": lambda r, a, i: _Verdict(_png_bomb_under_limits(6000), **_value()),
        "jpeg-bomb": lambda r, a, i: _Verdict(
            _jpeg_bomb((65_500, 40_000, 20_000)[i % 3], (65_500, 40_000, 20_000)[i % 3]),
            **_value(),
            content_type="image/jpeg",
        ),
        "tiff-bomb": lambda r, a, i: _Verdict(
            _tiff_bomb(100_000, (100_000, 40_000)[i % 2], big=i % 3 == 0),
            **_value(),
            content_type="image/tiff",
        ),
        "tiff-without-size": lambda r, a, i: _Verdict(
            _tiff_without_size(), **_value(), content_type="image/tiff"
        ),
        "empty-image-declared": lambda r, a, i: _Verdict(_png(0, 64, 0, b""), **_value()),
        "float-tiff": lambda r, a, i: _Verdict(
            assets["float_tiff"], **_value(), content_type="image/tiff"
        ),
        "over-max-bytes": lambda r, a, i: _Verdict(assets["big_png"], **_value()),
        # the content type
        "mismatched-content-type": lambda r, a, i: _Verdict(
            (jpeg, png, tiff)[i % 3],
            "decode",
            "content-type",
            content_type=("image/png", "image/tiff", "image/jpeg")[i % 3],
        ),
        "unsupported-content-type": lambda r, a, i: _Verdict(
            png,
            "headers",
            "content-type",
            content_type=("image/gif", "application/octet-stream", "text/plain", "image/webp")[
                i % 4
            ],
        ),
        "missing-content-type": lambda r, a, i: _Verdict(
            png, "headers", "content-type", content_type=(None, "", "  ; q=1")[i % 3]
        ),
        "image-declared-uri-list": lambda r, a, i: claim(png),
        # the other headers
        "no-headers-at-all": lambda r, a, i: _Verdict(
            png,
            "headers",
            "content-type",
            content_type=None,
            key=None,
            drop_headers=("instrument", "task", "captured-at", "frame-kind", "cruise"),
        ),
        "no-instrument-no-key": lambda r, a, i: _Verdict(
            png, "headers", "instrument", drop_headers=("instrument",), key=(None, b"")[i % 2]
        ),
        "bad-key-as-instrument": lambda r, a, i: _Verdict(
            png,
            "headers",
            "instrument",
            drop_headers=("instrument",),
            key=(b"flowcam-\xff\xfe", b"k" * 300, b"   ")[i % 3],
        ),
        # not a task name: refused with the headers; a well-formed name no head serves:
        # refused at routing (a plug-in task could serve it)
        "bad-task": lambda r, a, i: (
            header("task", (b"PLANKTON", b"whale!")[i % 2])
            if i % 3
            else _Verdict(png, "route", "task", set_headers=(("task", b"whale"),))
        ),
        "bad-frame-kind": lambda r, a, i: header("frame-kind", (b"tile", b"ROI", b"0")[i % 3]),
        "missing-captured-at": lambda r, a, i: (
            _Verdict(png, "headers", "captured-at", drop_headers=("captured-at",))
            if i % 2
            else captured(b"   ")
        ),
        "malformed-captured-at": malformed_time,
        "implausible-captured-at": bad_time,
        "bad-number": numeric,
        "non-utf8-header": non_utf8,
        "over-long-header": too_long,
        # claim checks
        "claim-check-escape": lambda r, a, i: claim(bad_uris[i % len(bad_uris)]),
        "claim-check-truncated-file": lambda r, a, i: claim(
            _uri(files.truncated), "decode", "value"
        ),
    }


def _odd_but_valid(assets: dict, files: _Files) -> dict[str, Callable[[int], _Verdict]]:
    """Frames that look strange and are fine: the daemon must store them."""

    def ok(value: bytes, content_type: str = "image/png", **extra) -> _Verdict:
        return _Verdict(value, None, None, content_type=content_type, **extra)

    return {
        "valid-16bit-png": lambda i: ok(assets["png16"]),
        "valid-16bit-tiff": lambda i: ok(assets["tiff16"], "image/tiff"),
        "valid-bgra-png": lambda i: ok(assets["bgra_png"]),
        "valid-gray-alpha-png": lambda i: ok(assets["gray_alpha_png"]),
        "valid-colour-tiff": lambda i: ok(assets["colour_tiff"], "image/tiff"),
        "valid-content-type-case-params": lambda i: ok(assets["jpeg"], "IMAGE/JPEG; q=0.9"),
        "valid-content-type-alias": lambda i: ok(
            (assets["jpeg"], assets["tiff"])[i % 2], ("image/jpg", "image/x-tiff")[i % 2]
        ),
        "valid-claim-check": lambda i: ok(_uri(files.good), "text/uri-list"),
        "valid-claim-check-inner-symlink": lambda i: ok(
            b"# frame\n" + _uri(files.inner_link), "text/uri-list"
        ),
        "valid-key-only-instrument": lambda i: ok(assets["png"], drop_headers=("instrument",)),
        "valid-control-chars-in-text": lambda i: ok(
            assets["png"], set_headers=(("station", b"st-01\nst-02"), ("cruise", b"a\tb\r"))
        ),
        "valid-edge-coordinates": lambda i: ok(
            assets["png"],
            set_headers=(("lat", b"-90"), ("lon", b"180"), ("depth-m", b"-10"), ("station", b"")),
        ),
    }


def _assets(rng: np.random.Generator, max_bytes: int) -> dict[str, bytes]:
    gray = _roi(rng)
    colour = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    side = int(np.ceil(np.sqrt(max_bytes * 1.2 / 3)))  # noise: PNG cannot compress it
    noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    bgra = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
    return {
        "jpeg": _encode(colour, ".jpg"),
        "png": _encode(gray, ".png"),
        "tiff": _encode(gray, ".tiff"),
        "png16": _encode(gray.astype(np.uint16) * 257, ".png"),
        "tiff16": _encode(gray.astype(np.uint16) * 257, ".tiff"),
        "bgra_png": _encode(bgra, ".png"),
        "gray_alpha_png": _png_gray_alpha(gray),
        "colour_tiff": _encode(colour, ".tiff"),
        "float_tiff": _encode(gray.astype(np.float32) / 255, ".tiff"),
        "big_png": _encode(noise, ".png"),
    }


def _message(
    kind: str, index: int, verdict: _Verdict, captured_ns: int, instrument: str
) -> HostileMessage:
    campaign_id = f"{kind}#{index}"
    headers: dict[str, bytes] = {
        "instrument": instrument.encode(),
        "task": b"plankton",
        "captured-at": verdict.captured_at or str(captured_ns).encode(),
        "frame-kind": b"roi",
        "cruise": b"hostile-2026",
    }
    if verdict.content_type is not None:
        headers["content-type"] = verdict.content_type.encode()
    for name in verdict.drop_headers:
        headers.pop(name, None)
    headers.update(dict(verdict.set_headers))
    headers[CAMPAIGN_HEADER] = campaign_id.encode()
    key = verdict.key if verdict.key != INSTRUMENT.encode() else instrument.encode()
    uid = None
    if verdict.stage is None:
        named = headers.get("instrument", key or b"").decode()
        uid = f"{named}@{captured_ns}"
    return HostileMessage(
        kind,
        campaign_id,
        key,
        verdict.value,
        list(headers.items()),
        verdict.stage,
        verdict.field,
        uid,
    )


def hostile_messages(
    n: int,
    *,
    seed: int,
    claim_root: Path,
    outside: Path,
    max_bytes: int = 256 * 1024,
    valid: int | None = None,
    start_ns: int | None = None,
) -> list[HostileMessage]:
    """``n`` bad messages (every kind in turn) and ``valid`` odd-but-valid ones (default
    n // 10), shuffled by ``seed``. Writes the claim-check files under ``claim_root`` and
    ``outside`` (the folder the symlinks and traversals try to reach)."""
    rng = np.random.default_rng(seed)
    assets = _assets(rng, max_bytes)
    files = _claim_check_files(claim_root, outside, assets["png"], assets["big_png"])
    bad_kinds = _kinds(assets, files)
    odd_kinds = _odd_but_valid(assets, files)
    start = time.time_ns() - 3600 * 10**9 if start_ns is None else start_ns
    names = list(bad_kinds)
    messages = []
    for index in range(n):
        kind = names[index % len(names)]
        verdict = bad_kinds[kind](rng, assets, index // len(names))
        messages.append(_message(kind, index, verdict, start + index * 1000, INSTRUMENT))
    odd_names = list(odd_kinds)
    for index in range(n // 10 if valid is None else valid):
        kind = odd_names[index % len(odd_names)]
        verdict = odd_kinds[kind](index // len(odd_names))
        captured = start + (n + index) * 1000
        messages.append(_message(kind, n + index, verdict, captured, ODD_INSTRUMENT))
    order = rng.permutation(len(messages))
    return [messages[i] for i in order]


__all__ = ["CAMPAIGN_HEADER", "HostileMessage", "hostile_messages"]
