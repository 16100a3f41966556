"""Click parameter callbacks shared by the commands."""

from __future__ import annotations

import click


def capture_time(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An option holding a capture time (RFC 3339 with a zone, or epoch ns) -> epoch ns."""
    from seawatch.contracts.frames import epoch_ns

    if value is None:
        return None
    try:
        return epoch_ns(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


__all__ = ["capture_time"]
