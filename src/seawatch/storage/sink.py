"""The one interface every sink implements. The pipeline commits offsets only after
:meth:`Sink.flush` has returned for every sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from seawatch.contracts.records import FrameRecord


@runtime_checkable
class Sink(Protocol):
    """A destination for frame records: add, make durable, close."""

    name: str

    def add(self, records: Sequence[FrameRecord]) -> None:
        """Queue records (may write them, but need not make them durable)."""

    def flush(self) -> None:
        """Make every added record durable; raise StorageError if that is impossible."""

    def close(self) -> None:
        """Flush and release resources."""


__all__ = ["Sink"]
