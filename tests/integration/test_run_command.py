"""`seawatch run` as an operator starts it: a process, settings from the environment, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from seawatch.ingest.broker import free_port
from tests.daemon_process import stored_count
from tests.integration.helpers import publish_synthetic, settings_for

pytestmark = pytest.mark.integration


def test_run_processes_the_stream_and_sigterm_stops_it_cleanly(tmp_path, broker, unique, model_dir):
    settings = settings_for(tmp_path, broker, unique, model_dir)
    n = 120
    publish_synthetic(settings, n, seed=11)
    kafka = settings.kafka
    env = {
        **os.environ,
        "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SEAWATCH_HTTP__PORT": str(free_port()),
        "SEAWATCH_KAFKA__TOPICS": f'["{kafka.topics[0]}"]',
        "SEAWATCH_KAFKA__DLQ_TOPIC": kafka.dlq_topic,
        "SEAWATCH_KAFKA__GROUP_ID": kafka.group_id,
        "SEAWATCH_KAFKA__MAX_POLL_INTERVAL_MS": "6000",
        "SEAWATCH_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "SEAWATCH_TASKS__PLANKTON__MODEL_DIR": str(model_dir),
        "SEAWATCH_STORAGE__LOCAL__PATH": str(settings.storage.local.path),
        "SEAWATCH_STORAGE__INFLUX__TOKEN": "tok-3f9a-never-logged",
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "seawatch", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while stored_count(settings.storage.local.path) < n and time.monotonic() < deadline:
            assert daemon.poll() is None, daemon.stderr.read()
            time.sleep(0.2)
        assert stored_count(settings.storage.local.path) == n
        daemon.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = daemon.communicate(timeout=10)
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, stderr[-2000:]
    assert "stopping signal=SIGTERM" in stderr
    assert f"stopped frames={n}" in stderr
    # the effective settings are logged once at start, as key=value JSON
    assert '"group_id":"' + kafka.group_id + '"' in stderr
    assert "tok-3f9a-never-logged" not in stderr and '"token":"**********"' in stderr
