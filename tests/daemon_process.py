"""``seawatch run`` as an operator starts it, for the fault tests: a child process with its
settings in ``SEAWATCH_*`` variables, its log in a file, and what the tests watch it by
(stored frames, resident memory)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from seawatch.config import Settings
from seawatch.storage.local_store import stored_frame_count

HTTP_PORTS = 4  # worker i of `--workers N` serves on http.port + i; the tests run N <= 3


def _ephemeral_low() -> int:
    """The first port the kernel hands out as a client socket's source port (Linux)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(count: int = HTTP_PORTS) -> int:
    """A base port whose ``count`` ports from it are all free, below the ephemeral range.

    A port the kernel chose (bind to 0) lies in the range it also hands out to client sockets
    (the broker connections), so ``base + 1`` of such a port could be taken by one before a
    second worker binds it (seen in CI: worker 1 restarted twice on "port in use").
    """
    low = _ephemeral_low()
    chooser = random.Random()  # not the tests' seeded random: parallel runs must differ
    for _ in range(200):
        base = chooser.randrange(20000, low - count)
        if all(_bindable(base + i) for i in range(count)):
            return base
    msg = f"no {count} consecutive free ports found in 20000-{low}"
    raise RuntimeError(msg)


def daemon_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes ``seawatch run`` use ``settings``' broker, topics and stores."""
    kafka, storage = settings.kafka, settings.storage
    env = {
        **os.environ,
        "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SEAWATCH_KAFKA__TOPICS": json.dumps(kafka.topics),
        "SEAWATCH_KAFKA__DLQ_TOPIC": kafka.dlq_topic,
        "SEAWATCH_KAFKA__GROUP_ID": kafka.group_id,
        "SEAWATCH_KAFKA__PARTITIONS": str(kafka.partitions),
        "SEAWATCH_KAFKA__MAX_POLL_INTERVAL_MS": str(kafka.max_poll_interval_ms),
        "SEAWATCH_KAFKA__SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
        "SEAWATCH_KAFKA__HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
        "SEAWATCH_TASKS__PLANKTON__MODEL_DIR": str(settings.tasks["plankton"].model_dir),
        "SEAWATCH_STORAGE__LOCAL__PATH": str(storage.local.path),
        "SEAWATCH_ALERTS__TOPIC": f"{kafka.dlq_topic}.alerts",
        "SEAWATCH_HTTP__PORT": str(free_port_run()),
    }
    if storage.influx.url:
        env["SEAWATCH_STORAGE__INFLUX__URL"] = storage.influx.url
    env.update(extra)
    return env


class DaemonProcess:
    """One ``python -m seawatch run`` child; its stderr goes to ``log_path``."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *run_args: str, cwd: Path | None = None
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "seawatch", "run", *run_args],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=self._log,
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill()
        self._log.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the child in KiB, from /proc."""
        fields = memory_kib(self.pid)
        return fields["VmRSS"], fields["VmHWM"]

    def kill(self) -> int:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        self.process.send_signal(signal.SIGKILL)
        return self.wait(10)

    def terminate(self, timeout_s: float = 15) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until it exited)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.wait(timeout_s)
        return code, time.monotonic() - sent

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition, timeout_s: float, what: str) -> None:
        """Poll ``condition()`` until true; fail with the log's tail if the child dies first."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if not self.alive():
                tail = self.log()[-3000:]
                raise AssertionError(f"daemon exited while waiting for {what}:\n{tail}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")
            time.sleep(0.05)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process in KiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def stored_count(path: Path) -> int:
    """Frames in the local store (0 before the daemon has created it)."""
    return stored_frame_count(path)
