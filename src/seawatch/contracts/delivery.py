"""The delivery policy every writer to a server shares (InfluxDB, webhooks): which answers are
worth another attempt, and how long to wait before it."""

from __future__ import annotations

import random


def retriable_status(status: int | None) -> bool:
    """Whether another attempt can succeed: no answer at all, 429, or a 5xx."""
    return status is None or status == 429 or status >= 500


def backoff_delay(base_s: float, attempt: int, cap_s: float) -> float:
    """Exponential backoff with jitter: ``base_s * 2**(attempt-1)``, capped, times 0.5..1.5."""
    return min(cap_s, base_s * 2 ** min(attempt - 1, 30)) * (0.5 + random.random())


__all__ = ["backoff_delay", "retriable_status"]
