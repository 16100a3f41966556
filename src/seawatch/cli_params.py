"""Click parameter callbacks shared by the commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from seawatch.config import Settings


def settings_of(ctx: click.Context) -> Settings:
    """The settings the root command loaded (for a command at any depth)."""
    return ctx.find_root().obj["settings"]


def capture_time(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An option holding a capture time (RFC 3339 with a zone, or epoch ns) -> epoch ns."""
    from seawatch.contracts.frames import epoch_ns

    if value is None:
        return None
    try:
        return epoch_ns(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def task_name(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An option holding a task's name (a built-in or a plug-in task's)."""
    import re

    from seawatch.contracts.frames import BUILTIN_TASKS, TASK_NAME

    if not re.fullmatch(TASK_NAME, value):
        msg = f"{value!r} is not a task name; use {', '.join(BUILTIN_TASKS)} or a plug-in's"
        raise click.BadParameter(msg, param=param)
    return value


__all__ = ["capture_time", "settings_of", "task_name"]
