"""The alert state of one partition as written to the state topic: a JSON document.

``covered``: the highest offset judged; ``token``: who wrote it (writer and sequence);
``alerts_from``: per partition of the alerts topic, an offset at or before any alert its
writer sends later; ``instruments``: per instrument and rule, the rule's settings
fingerprint, its cooldowns and its state (:meth:`seawatch.alerts.engine.AlertEngine.export`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from seawatch.contracts.partitions import Partition

VERSION = 1
_FIELDS = ("covered", "token", "alerts_from", "instruments")


def encode(
    partition: Partition,
    *,
    group: str,
    covered: int,
    token: str,
    alerts_from: dict[int, int],
    instruments: dict[str, Any],
) -> bytes:
    """The snapshot document, compact JSON."""
    document = {
        "version": VERSION,
        "group": group,
        "topic": partition.topic,
        "partition": partition.partition,
        "covered": covered,
        "token": token,
        "written_s": time.time(),
        "alerts_from": {str(p): offset for p, offset in sorted(alerts_from.items())},
        "instruments": instruments,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def decode(raw: bytes) -> dict[str, Any]:
    """The document of :func:`encode`; ValueError naming what is wrong with it."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        version = document.get("version") if isinstance(document, dict) else None
        raise ValueError(f"version {version!r}, this daemon reads {VERSION}")
    missing = [f for f in _FIELDS if f not in document]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    document["alerts_from"] = {int(p): int(o) for p, o in document["alerts_from"].items()}
    return document


__all__ = ["VERSION", "decode", "encode"]
