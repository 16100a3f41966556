"""Real servers for the tests: the Tansu broker and VictoriaMetrics, on free loopback ports.

Where a server binary is missing the test is skipped with the install command, except on
CI (CI=true), where a missing binary is a failure.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from seawatch.config import env_is_ci
from seawatch.ingest.broker import free_port

_S = TypeVar("_S", bound="_ServerProcess")


def require_binary(name: str, install: str) -> str:
    """Path of ``name``; skip (or fail on CI) with the install command when absent."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; {install}"
        if env_is_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                if response.status < 300:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


class _ServerProcess:
    """A server the tests start as a child process and stop with SIGTERM."""

    process: subprocess.Popen[bytes] | None = None

    def start(self) -> _ServerProcess:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None


@contextmanager
def _running(server: _S) -> Iterator[_S]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class VictoriaMetrics(_ServerProcess):
    """A VictoriaMetrics process; accepts InfluxDB line protocol on /api/v2/write."""

    def __init__(self, data_dir: Path) -> None:
        self.binary = require_binary(
            "victoria-metrics", "apt-get install victoria-metrics (Debian)"
        )
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VictoriaMetrics:
        self.process = subprocess.Popen(
            [
                self.binary,
                f"-storageDataPath={self.data_dir}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_http(f"{self.url}/health", 20)
        return self

    def export(self, match: str) -> list[dict]:
        """Every series matching ``match`` with all its samples (after a forced flush)."""
        import json
        import urllib.parse

        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).close()
        # An explicit window: without one the newest samples (search.latencyOffset) are left out.
        now = int(time.time())
        query = urllib.parse.urlencode(
            {"match[]": match, "start": now - 30 * 86400, "end": now + 86400}
        )
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as response:
            return [json.loads(line) for line in response.read().splitlines() if line.strip()]


@contextmanager
def victoria_metrics(data_dir: Path) -> Iterator[VictoriaMetrics]:
    with _running(VictoriaMetrics(data_dir)) as server:
        yield server


class InfluxDB1(_ServerProcess):
    """An InfluxDB 1.x process (Debian's ``influxdb``): answers InfluxQL on /query and takes
    line protocol on the v1 /write endpoint. Used to run every dashboard query for real."""

    def __init__(self, data_dir: Path) -> None:
        self.binary = require_binary("influxd", "apt-get install influxdb (Debian)")
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InfluxDB1:
        d = self.data_dir
        d.mkdir(parents=True, exist_ok=True)
        config = d / "influxdb.conf"
        config.write_text(
            f"""reporting-enabled = false
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{d / "meta"}"
  logging-enabled = false
[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  write-tracing = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "error"
"""
        )
        self.process = subprocess.Popen(
            [self.binary, "-config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_http(f"{self.url}/ping", 30)
        return self

    def write(self, database: str, lines: list[str]) -> None:
        """Load line protocol through the v1 /write endpoint (ns precision)."""
        for start in range(0, len(lines), 5000):
            body = "\n".join(lines[start : start + 5000]).encode()
            request = urllib.request.Request(
                f"{self.url}/write?db={database}&precision=ns", data=body, method="POST"
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 204, response.status


@contextmanager
def influxdb1(data_dir: Path) -> Iterator[InfluxDB1]:
    with _running(InfluxDB1(data_dir)) as server:
        yield server
