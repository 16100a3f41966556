"""How likely a classifier's answer is wrong, from what every stored object has: its top-1
probability and its top-k candidates. The review station's "most likely wrong" queue sorts
by it (an indexed column), highest first."""

from __future__ import annotations

from collections.abc import Sequence


def wrongness_of(confidence: float, top_k: Sequence[tuple[str, float]]) -> float:
    """1 - (top-1 - top-2 probability): a small margin between the two best taxa is the
    sign of a doubtful answer."""
    second = float(top_k[1][1]) if len(top_k) > 1 else 0.0
    return round(1.0 - (float(confidence) - second), 6)


__all__ = ["wrongness_of"]
