"""The demo's own pieces: its alert settings, its cruise's start and its paced feed."""

from __future__ import annotations

import time

from seawatch.alert_settings import InstrumentSilentRule
from seawatch.config import load_settings
from seawatch.demo import DEMO_SILENT_S, _Feed, cruise_start_ns, demo_settings, describe_plan
from seawatch.ingest.publish import FrameMessage
from seawatch.models.cruise_plan import DEMO_PLAN, HOUR_NS


def test_the_demo_waits_seconds_not_minutes_for_a_silent_instrument():
    settings = load_settings(None)
    default = [r for r in settings.alerts.rules if isinstance(r, InstrumentSilentRule)]
    assert default and all(r.silent_s > DEMO_SILENT_S for r in default)
    demo = demo_settings(settings)
    silent = [r for r in demo.alerts.rules if isinstance(r, InstrumentSilentRule)]
    assert [r.silent_s for r in silent] == [DEMO_SILENT_S] * len(default)
    others = [r for r in demo.alerts.rules if not isinstance(r, InstrumentSilentRule)]
    assert others == [r for r in settings.alerts.rules if not isinstance(r, InstrumentSilentRule)]


def test_the_cruise_starts_on_the_hour_and_ends_before_now():
    now = time.time_ns()
    start = cruise_start_ns(DEMO_PLAN, now)
    assert start % HOUR_NS == 0
    end = start + round(DEMO_PLAN.hours * HOUR_NS)
    assert now - HOUR_NS < end <= now
    line = describe_plan(DEMO_PLAN)
    assert "6 stations over 26 h" in line and "noctiluca blooms at st-03" in line
    assert "ifcb-007 falls silent" in line


class _Publisher:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, topic, value, key, headers) -> None:
        self.sent += 1

    def flush(self) -> None:
        pass


def _wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_feed_keeps_at_most_lead_messages_ahead_of_the_daemon():
    handled = [0]
    messages = (FrameMessage(b"k", b"v", None, raw_headers=[]) for _ in range(10))
    publisher = _Publisher()
    feed = _Feed(publisher, "frames", messages, {}, lambda: handled[0], lead=3)
    feed.start()
    _wait_for(lambda: publisher.sent >= 3)
    time.sleep(0.1)
    assert publisher.sent == feed.sent == 3  # and no further while the daemon does nothing
    handled[0] = 5
    _wait_for(lambda: publisher.sent >= 8)
    time.sleep(0.1)
    assert publisher.sent == 8
    feed.stopped.set()  # the demo stopped: the rest is never sent
    feed.join(5)
    assert not feed.is_alive() and publisher.sent == 8 and feed.error is None


def test_the_summary_shows_the_cruise_span_and_the_alerts_with_their_station(tmp_path):
    from rich.console import Console

    from seawatch.alerts.model import Alert, Evidence
    from seawatch.demo import DemoResult, summary_table
    from seawatch.stats import PipelineStats
    from seawatch.storage.local_store import LocalStore
    from tests.storage.factories import make_record

    t0 = 1_780_000_200 * 10**9
    first = make_record(t0, station="st-01", offset=1)
    bloom = make_record(t0 + 10 * HOUR_NS, station="st-03", offset=2)
    last = make_record(t0 + 26 * HOUR_NS, station="st-06", offset=3)
    store = LocalStore(tmp_path / "demo.db")
    store.add([first, bloom, last])
    store.flush()
    store.close()
    common = {"severity": "warning", "cruise": "c", "value": 9.0, "threshold": 3.0}
    alerts = (
        Alert(
            "plankton-bloom", "plankton_bloom", instrument="uvp6-014", subject="noctiluca",
            message="noctiluca bloom at uvp6-014", at_ns=bloom.meta.captured_at_ns,
            evidence=Evidence(frame_uid=bloom.uid), **common,
        ),
        Alert(
            "instrument-silent", "instrument_silent", instrument="ifcb-007", subject="silent",
            message="no frame from ifcb-007 for 11 s", at_ns=t0, **common,
        ),
    )  # fmt: skip
    stats = PipelineStats()
    stats.stored([first, bloom, last], time.perf_counter() - 1.0, [int(time.time() * 1000)] * 3)
    result = DemoResult(3, 0, 1.0, stats, tmp_path / "demo.db", alerts)
    console = Console(width=160, record=True)
    console.print(summary_table(result))
    text = console.export_text()
    assert "26.0 h at 3 stations" in text
    assert "noctiluca bloom at uvp6-014 (st-03, hour 10.0)" in text
    assert "no frame from ifcb-007 for 11 s" in text
