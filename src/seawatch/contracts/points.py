"""InfluxDB line protocol, the encoding of every point seawatch writes (records, alerts,
pipeline metrics): escaping of names, tags and string fields; None and non-finite fields left
out."""

from __future__ import annotations

import math
from collections.abc import Mapping

FieldValue = int | float | bool | str | None

# Line protocol cannot carry line breaks or tabs in names and tag values, nor line breaks in
# string fields for readers that split lines before parsing: they are written as two
# characters (``\n``), as influxdb-client does for names and tags.
_SPELLED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", **_SPELLED})
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_SPELLED})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def _escape_key(text: str) -> str:
    return text.translate(_KEY)


def _escape_measurement(text: str) -> str:
    return text.translate(_MEASUREMENT)


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return f'"{str(value).translate(_STRING)}"'


def _present(value: FieldValue) -> bool:
    # None is "no value"; so are NaN and infinities, which line protocol cannot write.
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], time_ns: int
) -> str | None:
    """One line of line protocol; None and non-finite fields are left out, None when no field
    is left."""
    body = ",".join(f"{_escape_key(k)}={_field(v)}" for k, v in fields.items() if _present(v))
    if not body:
        return None
    tag_text = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return f"{_escape_measurement(measurement)}{tag_text} {body} {time_ns}"


__all__ = ["FieldValue", "line"]
