"""Secrets kept in files (Docker/Kubernetes secrets, systemd credentials), and URLs made safe
to log.

A ``*_file`` setting names a file whose content is the secret: read once when the settings
are loaded, one trailing newline stripped (``echo`` and most editors add one). An empty
file is refused; a file that others may read is accepted with a warning, since a secret
that the group or the world can read is no longer one.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

REDACTED = "***"


def read_secret_file(path: Path, field: str) -> str:
    """The secret in ``path`` (``field`` names the setting, for the messages)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except FileNotFoundError:
        msg = f"{field}: {path} does not exist; point it at the file that holds the secret"
        raise ValueError(msg) from None
    except IsADirectoryError:
        msg = f"{field}: {path} is a directory; point it at the file that holds the secret"
        raise ValueError(msg) from None
    except PermissionError:
        msg = f"{field}: {path} is not readable by this user; fix its owner or mode (0600)"
        raise ValueError(msg) from None
    if not stat.S_ISREG(mode):
        msg = f"{field}: {path} is not a regular file; point it at the file that holds the secret"
        raise ValueError(msg)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{field}: {path} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        msg = f"{field}: {path} is empty; write the secret into it (one line)"
        raise ValueError(msg)
    if "\n" in text or "\r" in text:
        msg = f"{field}: {path} holds more than one line; a secret file holds the secret only"
        raise ValueError(msg)
    if mode & (stat.S_IRGRP | stat.S_IROTH) and os.name == "posix":
        log.warning(
            "secret_file_readable_by_others field=%s path=%s mode=%s fix='chmod 600 %s'",
            field,
            path,
            oct(stat.S_IMODE(mode)),
            path,
        )
    return text


def redact_url(url: str) -> str:
    """``url`` as it may be logged: no userinfo, every query value (or bare query word) and
    the fragment replaced by ``***``, and the path cut after its first segment.

    Scheme, host, port, the first path segment and the query's parameter names stay, so a
    log line still says which endpoint failed. The rest of the path goes because many
    webhook services put the credential there (``/services/T000/B000/<secret>``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    first, slash, rest = parts.path.lstrip("/").partition("/")
    path = ("/" + first if parts.path.startswith("/") else first) + (
        f"/{REDACTED}" if slash and rest else slash
    )
    query = "&".join(
        f"{item.partition('=')[0]}={REDACTED}" if "=" in item else REDACTED
        for item in parts.query.split("&")
        if item
    )
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


__all__ = ["REDACTED", "read_secret_file", "redact_url"]
