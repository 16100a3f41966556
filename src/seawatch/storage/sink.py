"""The interfaces every sink implements. The pipeline commits offsets only after
:meth:`Sink.flush` has returned for every sink.

Two capabilities, both part of the interface rather than discovered at run time:

- backpressure: :meth:`Sink.saturated` says the sink cannot take more now (the InfluxDB
  outbox at its limit); the pipeline then pauses consumption, never drops;
- raw points: a :class:`LineSink` also takes line-protocol points that are not frame records
  (the ``pipeline`` metrics, alerts), and reports its ``backlog``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from seawatch.contracts.records import FrameRecord


@runtime_checkable
class Sink(Protocol):
    """A destination for frame records: add, make durable, report backpressure, close."""

    name: str

    def add(self, records: Sequence[FrameRecord]) -> None:
        """Queue records (may write them, but need not make them durable)."""

    def flush(self) -> None:
        """Make every added record durable; raise StorageError if that is impossible."""

    def saturated(self) -> bool:
        """True while the sink cannot take more (consumption pauses until it can)."""

    def close(self) -> None:
        """Flush and release resources."""


@runtime_checkable
class LineSink(Sink, Protocol):
    """A sink that also takes raw line-protocol points."""

    @property
    def backlog(self) -> int:
        """Points taken but not yet acknowledged by the server."""

    def add_lines(self, lines: Sequence[str]) -> None:
        """Queue raw line-protocol points (durable at the next :meth:`flush`)."""


__all__ = ["LineSink", "Sink"]
