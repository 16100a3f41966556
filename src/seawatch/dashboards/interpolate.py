"""Template variables in InfluxQL, substituted the way Grafana's InfluxDB datasource does.

Used to find which variables a dashboard uses (the structural checks) and to run every
panel's query against a real InfluxDB in the tests, with values chosen for the variables.
Multi-value variables become ``(a|b)`` with regex metacharacters escaped, ``All`` becomes the
variable's ``allValue`` (``.*``), ``$timeFilter`` becomes the time range in ms, and
``$__interval`` the group-by interval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_REFERENCE = re.compile(r"\$\{([\w.]+)(?::[^}]*)?\}|\[\[([\w.]+)\]\]|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|\[\]{}/])")
#: Grafana's own variables (besides every ``__name``).
BUILTINS = frozenset({"timeFilter"})
#: Alias patterns of the InfluxDB datasource (``$tag_<key>``, ``$col``, ``$m``).
_ALIAS = re.compile(r"^(tag_\w+|col|m|measurement)$")

Value = str | Sequence[str] | None


def references(text: str) -> set[str]:
    """Names of the variables ``text`` refers to (``$x``, ``${x}``, ``${x:fmt}``, ``[[x]]``)."""
    return {next(g for g in m.groups() if g) for m in _REFERENCE.finditer(text)}


def is_builtin(name: str, *, alias: bool = False) -> bool:
    """Whether ``name`` is Grafana's own (``$__interval``, ``$timeFilter``, alias patterns)."""
    return name.startswith("__") or name in BUILTINS or (alias and bool(_ALIAS.match(name)))


def escape_regex(value: str) -> str:
    """Grafana's ``escapeRegex``: a literal value inside ``/.../``."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def format_value(value: Value, *, constant: bool = False) -> str:
    """A variable's value as Grafana writes it into an InfluxQL regex.

    None or ``All``: ``.*`` (the dashboards' allValue); one value: escaped; several: ``(a|b)``.
    Constants are written as they are."""
    if constant:
        return str(value or "")
    if value is None or value == "All" or (not isinstance(value, str) and not value):
        return ".*"
    if isinstance(value, str):
        return escape_regex(value)
    escaped = [escape_regex(v) for v in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def render(
    text: str,
    values: Mapping[str, Value],
    *,
    start_ns: int,
    end_ns: int,
    interval: str = "1m",
    constants: Mapping[str, str] | None = None,
) -> str:
    """``text`` with its variables and ``$timeFilter``/``$__interval`` substituted.

    A variable not in ``values`` or ``constants`` is left as it is (the query then fails
    on the server, which is what a test wants to notice)."""
    constants = constants or {}
    time_filter = f"time >= {start_ns // 1_000_000}ms and time <= {end_ns // 1_000_000}ms"

    def substitute(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name == "timeFilter":
            return time_filter
        if name == "__interval":
            return interval
        if name in constants:
            return format_value(constants[name], constant=True)
        if name in values:
            return format_value(values[name])
        return match.group(0)

    return _REFERENCE.sub(substitute, text)


__all__ = ["BUILTINS", "escape_regex", "format_value", "is_builtin", "references", "render"]
