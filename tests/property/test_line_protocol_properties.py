"""Properties of the line protocol writer, checked with a small parser of the documented
grammar: ``measurement[,tag=value...] field=value[,field=value...] timestamp``, where a
backslash escapes ``,`` ``=`` space and backslash in names and tag values, and ``"`` and
backslash in string fields. Line protocol cannot carry a newline, carriage return or tab in
a name or tag value (nor a line break in a string field for readers that split lines before
parsing), so the writer spells those as ``\\n``, ``\\r``, ``\\t``: two characters.
"""

from __future__ import annotations

import math
import re

from hypothesis import example, given
from hypothesis import strategies as st

from seawatch.contracts.points import line
from tests.property.strategies import props

_SPELLED = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
_SPELLED_IN_STRINGS = str.maketrans({"\n": "\\n", "\r": "\\r"})  # a tab is kept in quotes
_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def _token(text: str, at: int, stops: str) -> tuple[str, int]:
    """Read an escaped name or tag value from ``at`` up to an unescaped stop character."""
    out = []
    while at < len(text) and text[at] not in stops:
        if text[at] == "\\" and at + 1 < len(text) and text[at + 1] in ",= \\":
            at += 1
        out.append(text[at])
        at += 1
    return "".join(out), at


def _field_value(text: str, at: int) -> tuple[object, int]:
    if text[at] == '"':
        out, at = [], at + 1
        while text[at] != '"':
            if text[at] == "\\" and text[at + 1] in '"\\':
                at += 1
            out.append(text[at])
            at += 1
        return "".join(out), at + 1
    end = at
    while end < len(text) and text[end] not in ", ":
        end += 1
    raw = text[at:end]
    if raw in ("true", "false"):
        return raw == "true", end
    if raw.endswith("i"):
        assert re.fullmatch(r"-?\d+", raw[:-1]), raw
        return int(raw[:-1]), end
    assert _NUMBER.fullmatch(raw), f"{raw!r} is not a line-protocol float"
    return float(raw), end


def parse(text: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    """One line of line protocol -> (measurement, tags, fields, timestamp)."""
    assert "\n" not in text and "\r" not in text, text
    measurement, at = _token(text, 0, ", ")
    tags: dict[str, str] = {}
    while text[at] == ",":
        key, at = _token(text, at + 1, "=")
        tags[key], at = _token(text, at + 1, ", ")
    assert text[at] == " "
    fields: dict[str, object] = {}
    while text[at] in ", ":
        if text[at] == " " and fields:
            break
        key, at = _token(text, at + 1, "=")
        fields[key], at = _field_value(text, at + 1)
    assert text[at] == " "
    return measurement, tags, fields, int(text[at + 1 :])


names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
nasty = st.text(
    st.sampled_from([*',= "\\\n\r\tab\u00e9\u2028', "\U0001f41f"]), min_size=1, max_size=12
)
values = st.one_of(names, nasty)
field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    values,
)


@props(400)
@given(
    measurement=values,
    tags=st.dictionaries(values, values | st.just(""), max_size=4),
    fields=st.dictionaries(values, field_values, max_size=4),
    time_ns=st.integers(-(2**63), 2**63 - 1),
)
@example(measurement="frames", tags={"cruise": "a\nb"}, fields={"x": 1}, time_ns=5)
@example(measurement="m", tags={"t": "v\\"}, fields={"uid": 'i\n"x"\\'}, time_ns=0)
def test_lines_parse_back_to_their_parts(measurement, tags, fields, time_ns):
    text = line(measurement, tags, fields, time_ns)
    kept = {k: v for k, v in fields.items() if v is not None}
    if not kept:
        assert text is None
        return
    parsed = parse(text)
    assert parsed[0] == measurement.translate(_SPELLED)
    assert parsed[1] == {k.translate(_SPELLED): v.translate(_SPELLED) for k, v in tags.items() if v}
    expected = {
        k.translate(_SPELLED): v.translate(_SPELLED_IN_STRINGS) if isinstance(v, str) else v
        for k, v in kept.items()
    }
    assert parsed[2] == expected
    assert parsed[3] == time_ns


@props(100)
@given(
    good=st.floats(allow_nan=False, allow_infinity=False),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_non_finite_floats_are_left_out_like_none(good, bad):
    text = line("m", {"t": "v"}, {"good": good, "bad": bad}, 1)
    assert parse(text)[2] == {"good": good}
    assert line("m", {}, {"bad": bad}, 1) is None
