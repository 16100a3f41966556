"""What the deploy tests share: naming a setting (tools: ``tests.servers.require_binary``)."""

from __future__ import annotations

import typing
from typing import Any

from seawatch.config import Settings


def setting_field(variable: str) -> Any:
    """The settings field ``SEAWATCH_A__B`` names, or None: a misspelt variable is otherwise
    ignored silently, so the name is walked through the model instead."""
    model: Any = Settings
    field = None
    keyed = False  # the previous part was a mapping (tasks): this part is a key
    for part in variable.removeprefix("SEAWATCH_").lower().split("__"):
        if keyed:
            keyed = False
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = field.annotation
        if typing.get_origin(model) is dict:
            model, keyed = typing.get_args(model)[1], True
    return field
