"""What every settings section shares: a frozen model that refuses unknown fields, and the
checks of secrets read from files and of PEM paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
)

from seawatch.secrets import read_secret_file

ENV_PREFIX = "SEAWATCH_"


class Section(BaseModel):
    """A settings section: frozen, and an unknown field is an error (a typo fails at start)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def secret_from_file(data: Any, field: str, file_field: str, where: str) -> Any:
    """Before validation: read ``file_field`` (a path) into ``field`` (a secret).

    Both set is refused (which one wins would be a guess), unless they agree, as they do
    when settings already loaded are validated again.
    """
    if not isinstance(data, dict) or data.get(file_field) in (None, ""):
        return data
    secret = read_secret_file(Path(data[file_field]), f"{where}.{file_field}")
    given = data.get(field)
    if isinstance(given, SecretStr):
        given = given.get_secret_value()
    if given not in (None, "") and given != secret:
        msg = (
            f"{where}.{field} and {where}.{file_field} are both set; keep one "
            f"(unset {ENV_PREFIX}{where.replace('.', '__').upper()}__{field.upper()} "
            "or remove it from the YAML file)"
        )
        raise ValueError(msg)
    return {**data, field: secret}


def readable_file(value: Path | None) -> Path | None:
    """A PEM file's path, checked to exist and be readable (None stays None)."""
    if value is None:
        return None
    if not value.is_file():
        raise ValueError(f"{value} does not exist or is not a file; give the PEM file's path")
    if not os.access(value, os.R_OK):
        raise ValueError(f"{value} is not readable by this user; fix its owner or mode")
    return value


__all__ = ["ENV_PREFIX", "Section", "readable_file", "secret_from_file"]
