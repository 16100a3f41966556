"""The frame message contract: header parsing and its errors."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seawatch.contracts.errors import FrameError
from seawatch.contracts.frames import FrameKind, FrameMeta, encode_headers, parse_headers

NOW = time.time_ns()


def _headers(**changes: bytes | None) -> list[tuple[str, bytes]]:
    base = {
        "content-type": b"image/png",
        "instrument": b"uvp6-014",
        "captured-at": b"2026-06-01T12:00:00.250Z",
        "frame-kind": b"full",
        "cruise": b"MSM-120",
        "lat": b"43.7",
        "volume-ml": b"1000",
    }
    base.update(changes)
    return [(k, v) for k, v in base.items() if v is not None]


def _parse(headers, topic="frames.plankton", key=b"uvp6-014"):
    return parse_headers(headers, topic=topic, key=key, now_ns=NOW)


def test_full_header_set_parses_and_round_trips():
    meta = _parse(_headers())
    assert meta.task == "plankton"  # from the topic
    assert meta.frame_kind is FrameKind.FULL
    assert meta.captured_at_ns % 10**9 == 250_000_000
    assert meta.lat == 43.7 and meta.volume_ml == 1000.0
    assert meta.station == "none"
    again = _parse(encode_headers(meta))
    assert again == meta
    assert meta.uid == f"uvp6-014@{meta.captured_at_ns}"


def test_epoch_nanoseconds_are_accepted():
    meta = _parse(_headers(**{"captured-at": str(NOW).encode()}))
    assert meta.captured_at_ns == NOW


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"content-type": None}, "content-type", "missing"),
        ({"content-type": b"image/gif"}, "content-type", "not supported"),
        ({"captured-at": None}, "captured-at", "missing"),
        ({"captured-at": b"yesterday"}, "captured-at", "RFC 3339"),
        ({"captured-at": b"1850-01-01T00:00:00Z"}, "captured-at", "before 1900"),
        ({"captured-at": b"2999-01-01T00:00:00Z"}, "captured-at", "future"),
        ({"captured-at": b"2026-06-01T12:00:00"}, "captured-at", "time zone"),
        ({"lat": b"123.4"}, "lat", "outside"),
        ({"lat": b"nan"}, "lat", "outside"),
        ({"lon": b"east"}, "lon", "not a number"),
        ({"depth-m": b"-50"}, "depth-m", "outside"),
        ({"frame-kind": b"half"}, "frame-kind", "roi or full"),
        ({"task": b"Whales!"}, "task", "not a task name"),
        ({"cruise": b"\xff\xfe"}, "cruise", "UTF-8"),
        ({"station": b"x" * 300}, "station", "at most 256"),
    ],
)
def test_bad_headers_name_the_field(changes, field, words):
    with pytest.raises(FrameError) as info:
        _parse(_headers(**changes))
    assert info.value.stage == "headers"
    assert info.value.field == field
    assert words in info.value.reason


@pytest.mark.parametrize(
    ("declared", "canonical"),
    [
        ("image/jpg", "image/jpeg"),
        ("Image/PJPEG; q=1", "image/jpeg"),
        ("image/x-tiff", "image/tiff"),
    ],
)
def test_content_type_aliases_the_decoder_accepts_are_accepted(declared, canonical):
    # They used to be refused here, so the decoder's aliases never reached it.
    meta = _parse(_headers(**{"content-type": declared.encode()}))
    assert meta.content_type == canonical


def test_instrument_falls_back_to_the_key_and_task_to_the_topic():
    meta = _parse(_headers(instrument=None), topic="ship.frames.otolith", key=b"scanner-2")
    assert meta.instrument == "scanner-2" and meta.task == "otolith"
    with pytest.raises(FrameError, match="instrument"):
        _parse(_headers(instrument=None), key=None)


header_values = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40).map(str.encode))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "content-type",
                "instrument",
                "captured-at",
                "frame-kind",
                "lat",
                "lon",
                "depth-m",
                "volume-ml",
                "pixel-size-um",
                "task",
                "cruise",
            ]
        ),
        header_values,
    )
)
def test_any_headers_parse_or_fail_with_a_frame_error(values):
    headers = [(k, v) for k, v in values.items() if v is not None]
    try:
        meta = _parse(headers)
    except FrameError as exc:
        assert exc.stage == "headers" and exc.field
    else:
        assert isinstance(meta, FrameMeta)
