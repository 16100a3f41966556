"""Properties of the frame header contract: round trips, and only FrameError on bad input."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from seawatch.contracts.errors import FrameError
from seawatch.contracts.frames import (
    BUILTIN_TASKS,
    CONTENT_TYPES,
    HEADER_NAMES,
    TASK_NAME,
    FrameKind,
    FrameMeta,
    encode_headers,
    epoch_ns,
    parse_headers,
    parse_time_ns,
)
from tests.property.strategies import props

NOW = time.time_ns()
MIN_NS = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp()) * 10**9
MAX_NS = NOW + 86_400 * 10**9
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RANGES = {
    "lat": (-90.0, 90.0),
    "lon": (-180.0, 180.0),
    "depth_m": (-10.0, 11_000.0),
    "volume_ml": (1e-9, 1e9),
    "pixel_size_um": (1e-3, 1e5),
}

# Header text: anything that survives the contract's strip and 256-character limit, with the
# characters ids really hold ('/', '.', spaces inside, non-ASCII) drawn often.
_SPECIAL = st.sampled_from(["MSM-120", "uvp6/014", "st.4", "North Sea 2", "Φ-7", "鱼", "a\tb"])
_ANY = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300)
texts = st.one_of(_SPECIAL, _ANY.map(lambda s: s.strip()[:256]).filter(bool))


def _number(name: str) -> st.SearchStrategy[float | None]:
    low, high = RANGES[name]
    return st.none() | st.floats(low, high, allow_nan=False) | st.sampled_from([low, high])


metas = st.builds(
    FrameMeta,
    instrument=texts,
    task=st.sampled_from(BUILTIN_TASKS),
    captured_at_ns=st.integers(MIN_NS, MAX_NS) | st.sampled_from([MIN_NS, MAX_NS, 0, -1]),
    frame_kind=st.sampled_from(FrameKind),
    content_type=st.sampled_from(CONTENT_TYPES),
    cruise=texts,
    station=texts,
    sample_id=st.none() | texts,
    lat=_number("lat"),
    lon=_number("lon"),
    depth_m=_number("depth_m"),
    volume_ml=_number("volume_ml"),
    pixel_size_um=_number("pixel_size_um"),
    specimen_id=st.none() | texts,
)


def _parse(headers, topic="frames.unknown", key=None) -> FrameMeta:
    return parse_headers(headers, topic=topic, key=key, now_ns=NOW)


@props(300)
@given(meta=metas, topic=st.text(max_size=20), key=st.none() | st.binary(max_size=20))
def test_encoded_headers_parse_back_to_the_same_meta(meta, topic, key):
    assert _parse(encode_headers(meta), topic=topic, key=key) == meta


@props(100)
@given(meta=metas, data=st.data())
def test_header_names_are_case_insensitive_and_order_free(meta, data):
    headers = encode_headers(meta)
    shuffled = data.draw(st.permutations(headers))
    recased = [
        ("".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in name), value)
        for name, value in shuffled
    ]
    assert _parse(recased) == meta


# --- arbitrary headers: a FrameMeta within the contract, or a FrameError naming a header ---

_NUMBERS = [
    "nan", "-nan", "inf", "-Infinity", "1e309", "-1e309", "1e-400", "0", "-0", "90", "90.0000001",
    "-90", "180.5", "1_0", " 43.7 ", "0x10", "１２", "1e9", "1e-9", "9.9e-10", "11000", "-10",
    "٣", "+5", "", " ",
]  # fmt: skip
_TIMES = [
    "1900-01-01T00:00:00Z", "1899-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.5Z",
    "2026-06-01T12:00:00+14:00", "2026-06-01T12:00:00", "2026-06-01", "-1", "0",
    "2208988800000000000", "99999999999999999999999", "²", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59", "2026-06-01T12:00:00.123456789Z", "2026-02-30T00:00:00Z",
]  # fmt: skip
_WORDS = [*CONTENT_TYPES, *BUILTIN_TASKS, "roi", "full", "ROI", "image/gif", "image/png; x=1"]
_WORDS.append("none")

header_values = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.sampled_from(_NUMBERS + _TIMES + _WORDS).map(str.encode),
    st.integers(-(10**30), 10**30).map(lambda n: str(n).encode()),
    st.floats().map(lambda f: repr(f).encode()),
    st.sampled_from([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"x" * 257, b" " * 300 + b"y"]),
    st.integers(257, 5000).map(lambda n: "é".encode() * n),
)


@st.composite
def header_names(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(HEADER_NAMES) | st.text(max_size=12))
    return "".join(draw(st.sampled_from([c, c.upper()])) for c in name)


_REQUIRED = [("content-type", b"image/png"), ("captured-at", b"2026-06-01T12:00:00Z")]


def _check_meta(meta: FrameMeta) -> None:
    assert meta.content_type in CONTENT_TYPES
    assert re.fullmatch(TASK_NAME, meta.task)
    assert isinstance(meta.frame_kind, FrameKind)
    assert MIN_NS <= meta.captured_at_ns <= MAX_NS
    for name in ("instrument", "cruise", "station", "sample_id", "specimen_id"):
        text = getattr(meta, name)
        if text is not None:
            assert isinstance(text, str) and text == text.strip() and 0 < len(text) <= 256, name
    for name, (low, high) in RANGES.items():
        value = getattr(meta, name)
        if value is not None:
            assert math.isfinite(value) and low <= value <= high, name


@props(600)
@given(
    headers=st.lists(st.tuples(header_names(), header_values), max_size=20),
    base=st.booleans(),
    topic=st.sampled_from(["frames.plankton", "frames.fish", "x.otolith", "plankton", ""])
    | st.text(max_size=20),
    key=st.none() | st.binary(max_size=300) | st.sampled_from([b" ", b"\xff", b"\n"]),
)
@example(headers=[("instrument", b" ")], base=True, topic="frames.fish", key=b"k" * 300)
@example(headers=[], base=True, topic="frames.fish", key=b"  \n")
def test_any_headers_give_a_valid_meta_or_a_frame_error_naming_a_header(headers, base, topic, key):
    # With ``base`` the required headers come first, so later fields get checked too.
    try:
        meta = _parse((_REQUIRED if base else []) + headers, topic=topic, key=key)
    except FrameError as error:
        assert error.stage == "headers"
        assert error.field in HEADER_NAMES, error
        assert error.reason
    else:
        _check_meta(meta)


# --- times ------------------------------------------------------------------------------

offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
stamps = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


def _exact_ns(stamp: datetime) -> int:
    return (stamp - EPOCH) // timedelta(microseconds=1) * 1000


def _rfc3339(stamp: datetime, spec: str, zulu: bool) -> str:
    text = stamp.isoformat(timespec=spec)
    return text.replace("+00:00", "Z") if zulu else text


@props(300)
@given(
    stamp=stamps,
    spec=st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    zulu=st.booleans(),
)
@example(  # before 1970 with a fraction: int(timestamp()) rounded toward zero, 1 s late
    stamp=datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), spec="microseconds", zulu=True
)
@example(stamp=datetime(1950, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC), spec="milliseconds", zulu=True)
def test_rfc3339_times_give_their_exact_epoch_ns(stamp, spec, zulu):
    text = _rfc3339(stamp, spec, zulu)
    kept = stamp.replace(microsecond=0) if spec == "seconds" else stamp
    if spec == "milliseconds":
        kept = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    assert epoch_ns(text) == _exact_ns(kept)
    assert epoch_ns(f"  {text}\n") == _exact_ns(kept)


@props(200)
@given(ns=st.integers(-(10**25), 10**25), pad=st.sampled_from(["", " ", "\t", "\n "]))
def test_integer_epoch_ns_round_trips(ns, pad):
    assert epoch_ns(f"{pad}{ns}{pad}") == ns


@props(400)
@given(text=st.text(max_size=40) | st.sampled_from(_TIMES + _NUMBERS))
@example(text="²")
@example(text="--5")
def test_epoch_ns_returns_an_int_or_raises_a_value_error_that_says_what_is_accepted(text):
    try:
        ns = epoch_ns(text)
    except ValueError as error:
        assert "RFC 3339" in str(error) or "time zone" in str(error)
    else:
        assert isinstance(ns, int)


@props(300)
@given(stamp=stamps)
def test_capture_times_are_accepted_exactly_in_the_plausible_window(stamp):
    ns = _exact_ns(stamp)
    text = stamp.isoformat()
    if MIN_NS <= ns <= NOW + 86_400 * 10**9:
        assert parse_time_ns(text, now_ns=NOW) == ns
    else:
        with pytest.raises(FrameError) as info:
            parse_time_ns(text, now_ns=NOW)
        assert info.value.stage == "headers" and info.value.field == "captured-at"
