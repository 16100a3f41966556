"""The demo's own pieces: its alert settings, its cruise's start and its paced feed."""

from __future__ import annotations

import time

import pytest

from seawatch.alert_settings import InstrumentSilentRule
from seawatch.config import load_settings
from seawatch.contracts.frames import FrameKind, FrameMeta
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
    now_ms = int(time.time() * 1000)
    tasks = ["plankton", "plankton", "otolith"]
    stats.stored([first, bloom, last], time.perf_counter() - 1.0, [now_ms - 200] * 3, tasks)
    stats.rejected("headers", "lat")
    log = tmp_path / "demo.log"
    result = DemoResult(4, 1, 1.0, stats, tmp_path / "demo.db", alerts, log)
    console = Console(width=160, record=True)
    console.print(summary_table(result))
    text = console.export_text()
    assert "26.0 h at 3 stations" in text
    assert "noctiluca bloom at uvp6-014 (st-03, hour 10.0)" in text
    assert "no frame from ifcb-007 for 11 s" in text
    cells = [line.split("│") for line in text.splitlines() if line.count("│") == 3]
    rows = {cell[1].strip(): cell[2].strip() for cell in cells}
    assert rows["otolith"].endswith(" ms") and rows["plankton"].endswith(" ms")
    assert rows["dead letters"] == "1" and rows["headers: lat"] == "1"
    assert rows["alerts"] == "2"
    assert rows["log (each alert, dead letter)"] == str(log)


def test_the_terminal_shows_warnings_but_not_the_counted_alerts_and_dead_letters(tmp_path):
    import logging

    from rich.console import Console

    from seawatch.demo_output import REPEATS_SHOWN, demo_logging

    console = Console(width=200, record=True)
    with demo_logging(tmp_path / "demo.log", console, verbose=False) as demo_log:
        logging.getLogger("seawatch.alerts.outputs").warning("alert rule=%s sev", "new-fish")
        logging.getLogger("seawatch.pipeline").warning("dead_letter stage=decode")
        logging.getLogger("seawatch.daemon").info("daemon_ready models=x")
        for _ in range(REPEATS_SHOWN + 2):
            logging.getLogger("seawatch.ingest").warning("broker_unreachable error=x")
        logging.getLogger("seawatch.pipeline").error("batch_not_committed reason=y")
        logging.getLogger("kafka.net.selector").warning("Task <T> ran for 0.354s (>0.100s)")
    shown = console.export_text()
    assert "alert rule" not in shown and "dead_letter" not in shown and "daemon_ready" not in shown
    assert shown.count("broker_unreachable") == REPEATS_SHOWN and "batch_not_committed" in shown
    assert "ran for" not in shown
    assert demo_log.held_back_line() == (
        f"more warnings, only in {demo_log.path}: 2 broker_unreachable, "
        "1 kafka-python event-loop notes"
    )
    logged = demo_log.path.read_text()
    assert "alert rule=new-fish" in logged and "dead_letter stage=decode" in logged
    assert logged.count("broker_unreachable") == REPEATS_SHOWN + 2 and "ran for 0.354s" in logged

    verbose = Console(width=200, record=True)
    with demo_logging(tmp_path / "verbose.log", verbose, verbose=True):
        logging.getLogger("seawatch.alerts.outputs").warning("alert rule=%s sev", "new-fish")
    assert "alert rule=new-fish" in verbose.export_text()


def test_the_demo_settings_file_keeps_the_users_settings_and_points_at_the_demo_store(tmp_path):
    from pathlib import Path

    from seawatch.demo_output import demo_config, follow_up_commands, follow_up_lines

    own = tmp_path / "own.yaml"
    own.write_text("log_level: WARNING\nstorage:\n  local:\n    path: seawatch-data/seawatch.db\n")
    store = tmp_path / "data" / "demo.db"
    written = demo_config(store, own)
    assert written == tmp_path / "data" / "demo.yaml"
    settings = load_settings(written)
    assert settings.storage.local.path == store and settings.log_level == "WARNING"
    lines = follow_up_lines(settings, "seawatch", Path("seawatch-data/demo.yaml"))
    commands = follow_up_commands(lines)
    assert len(commands) == 4 and all(
        c.startswith("seawatch --config seawatch-data/demo.yaml ") for c in commands
    )
    assert not any("#" in c for c in commands)  # zsh takes no comments at its prompt


def _seawatch_program() -> list[str]:
    """The seawatch console script beside this Python, as a user runs it."""
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "seawatch"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "seawatch"]


def _other_lines(output: str) -> list[str]:
    """The lines of a demo's output that are neither its progress bars nor its summary."""
    other, in_table = [], False
    for line in output.splitlines():
        if "seawatch demo: summary" in line:
            in_table = True
        elif in_table:
            in_table = not line.startswith("└")
        elif not line.startswith(("publish ", "process ")):
            other.append(line)
    return other


def _table_count(output: str, label: str) -> int:
    row = next(line for line in output.splitlines() if line.startswith(f"│ {label} "))
    return int(row.split("│")[2].split()[0])


@pytest.mark.integration
@pytest.mark.slow
def test_make_demo_prints_little_logs_the_rest_and_its_follow_up_commands_work(tmp_path):
    """Run as a user does, in a fresh folder: few lines besides the progress bars and the
    summary, every alert and dead letter in the log file, every message stored or
    dead-lettered, and each printed command works. (The only demo run of the suite: what
    tests/integration/test_publish_and_cli.py's own demo run asserted is asserted here.)"""
    import os
    import shlex
    import subprocess
    import urllib.request

    from seawatch.demo_output import follow_up_commands
    from seawatch.ingest.broker import broker_binary, free_port, wait_for_port

    broker_binary()  # the install hint when the broker is missing
    port = free_port()
    env = {**os.environ, "COLUMNS": "120", "SEAWATCH_REVIEW__PORT": str(port)}
    for name in list(env):
        if name.startswith("SEAWATCH_STORAGE__"):
            del env[name]  # the demo's own store, as on a fresh clone
    demo = subprocess.run(
        [*_seawatch_program(), "demo", "--frames", "300", "--broken-share", "0.03"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    output = demo.stdout + demo.stderr
    other = _other_lines(output)
    assert len(other) <= 20, "\n".join(other)
    assert "alert rule=" not in output and "dead_letter " not in output
    logged = (tmp_path / "seawatch-data" / "demo.log").read_text()
    alerts = _table_count(demo.stdout, "alerts")
    dead = _table_count(demo.stdout, "dead letters")
    assert alerts > 0 and logged.count(" alert rule=") == alerts
    assert dead > 0 and logged.count(" dead_letter stage=") == dead
    # the summary, and every message either stored or dead-lettered (the store read back)
    assert "frames stored" in demo.stdout and "latency p50 / p99" in demo.stdout
    from seawatch.storage.local_store import open_readonly

    db = open_readonly(tmp_path / "seawatch-data" / "demo.db")
    try:
        stored = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    finally:
        db.close()
    assert stored + dead == 300

    commands = follow_up_commands(demo.stdout.splitlines())
    assert [shlex.split(c)[-2:] for c in commands] == [
        ["--out", "cruise.html"],
        ["--out", "objects.tsv"],
        ["--role", "admin"],
        ["review", "serve"],
    ]
    report, export, user, serve = (shlex.split(c) for c in commands)
    # the three at once (each a fresh interpreter: seconds of imports on a busy core)
    runs = [
        (command, stdin, subprocess.Popen(command, cwd=tmp_path, env=env, text=True,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
        for command, stdin in ((report, ""), (export, ""), (user, "a-long-password\n" * 2))
    ]  # fmt: skip
    for command, stdin, process in runs:
        _, errors = process.communicate(stdin, timeout=120)
        assert process.returncode == 0, (command, errors[-2000:])
    assert "</html>" in (tmp_path / "cruise.html").read_text()
    assert len((tmp_path / "objects.tsv").read_text().splitlines()) > 2
    assert f"http://127.0.0.1:{port}/" in demo.stdout
    with subprocess.Popen(
        serve, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as server:
        try:
            wait_for_port("127.0.0.1", port, 30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
                assert page.status == 200 and "Log in" in page.read().decode()
        finally:
            server.terminate()


def test_the_printed_program_is_the_one_that_ran(monkeypatch):
    from seawatch import demo_output

    monkeypatch.setattr(demo_output.shutil, "which", lambda name: None)
    assert demo_output.program_name(".venv/bin/seawatch") == ".venv/bin/seawatch"
    assert demo_output.program_name("/elsewhere/x/__main__.py").endswith(" -m seawatch")


def _specimen(scanner: str, task: str = "otolith") -> FrameMessage:
    meta = FrameMeta(
        instrument=scanner,
        task=task,
        captured_at_ns=time.time_ns(),
        frame_kind=FrameKind.ROI,
        content_type="image/png",
    )
    return FrameMessage(scanner.encode(), b"v", meta)


def test_the_feed_sends_each_scanner_one_otolith_specimen_per_slot():
    messages = [_specimen("scan-a"), _specimen("scan-a"), _specimen("cam", "plankton")]
    messages += [_specimen("scan-b"), _specimen("cam", "plankton")]
    publisher = _Publisher()
    feed = _Feed(publisher, "f", iter(messages), {}, lambda: 0, lead=100, otolith_every_s=0.6)
    feed.start()
    _wait_for(lambda: publisher.sent >= 4)
    time.sleep(0.2)
    # the second specimen of scan-a waits for its slot; the others did not wait for it
    assert publisher.sent == 4
    _wait_for(lambda: publisher.sent >= 5)
    feed.join(5)
    assert publisher.sent == 5 and feed.seconds >= 0.5 and feed.error is None
