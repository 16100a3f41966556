"""Claim checks: frames too large for a Kafka message travel as a ``text/uri-list`` value
naming a file; only ``file://`` URIs whose real path lies under an allowed root are read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from seawatch.contracts.errors import FrameError
from seawatch.ingest.image_headers import URI_LIST, DecodeLimits, sniff_type


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


__all__ = ["resolve_claim_check"]
