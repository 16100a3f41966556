"""systemd's notify protocol, spoken by a running `seawatch run` to a real datagram socket
(what systemd listens on for a ``Type=notify`` service), with the sender's PID checked the
way ``NotifyAccess=main`` does."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

import pytest

from seawatch.health.systemd import SystemdNotifier
from tests.daemon_process import DaemonProcess, daemon_env
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration


class NotifySocket:
    """A bound AF_UNIX datagram socket that records (sender pid, message)."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[int, str]] = []

    def receive_until(self, predicate, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.messages) and time.monotonic() < deadline:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(struct.calcsize("3i"))
                )
            except TimeoutError:
                continue
            pid = next(
                struct.unpack("3i", cmsg_data)[0]
                for level, kind, cmsg_data in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            self.messages.extend((pid, line) for line in data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


def _has(state: str):
    return lambda messages: any(line == state for _, line in messages)


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_watchdog_and_stopping_come_from_the_main_pid(
    tmp_path, broker, unique, model_dir, workers
):
    settings = settings_for(tmp_path, broker, unique, model_dir, kafka__partitions=2)
    listener = NotifySocket(tmp_path / "notify.sock")
    env = daemon_env(
        settings,
        NOTIFY_SOCKET=listener.path,
        WATCHDOG_USEC="1000000",  # a watchdog of 1 s: fed every 0.5 s
    )
    run_args = ("--workers", str(workers)) if workers > 1 else ()
    try:
        with DaemonProcess(env, tmp_path / "daemon.log", *run_args) as daemon:
            listener.receive_until(_has("READY=1"), 90)
            assert _has("READY=1")(listener.messages), daemon.log()[-3000:]
            ready_at = len(listener.messages)
            listener.receive_until(
                lambda m: sum(line == "WATCHDOG=1" for _, line in m[ready_at:]) >= 3, 10
            )
            code, _ = daemon.terminate()
            listener.receive_until(_has("STOPPING=1"), 5)
    finally:
        listener.close()
    assert code == 0
    lines = [line for _, line in listener.messages]
    assert lines[0] == "READY=1"
    assert lines.count("READY=1") == 1
    assert lines.count("WATCHDOG=1") >= 3
    assert "STOPPING=1" in lines
    assert {pid for pid, _ in listener.messages} == {daemon.pid}  # never a worker's


def test_no_notify_socket_means_no_messages_and_no_errors(tmp_path):
    notifier = SystemdNotifier(environ={})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    notifier.start_watchdog(lambda: True)  # nothing to feed: returns, starts no thread
    notifier.stop()


def test_abstract_socket_and_a_stalled_loop_starves_the_watchdog(tmp_path):
    name = f"seawatch-test-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(0.1)
    alive = {"value": True}
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": f"@{name}", "WATCHDOG_USEC": "200000"})
    try:
        assert notifier.notify("READY=1")
        notifier.start_watchdog(lambda: alive["value"])
        received = _drain(server, 0.6)
        assert received.count("WATCHDOG=1") >= 3 and received[0] == "READY=1"
        alive["value"] = False  # the loop stalls: systemd must stop being told all is well
        time.sleep(0.15)
        _drain(server, 0.05)
        assert "WATCHDOG=1" not in _drain(server, 0.6)
    finally:
        notifier.stop()
        server.close()


def _drain(server: socket.socket, seconds: float) -> list[str]:
    lines, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            lines.append(server.recv(4096).decode())
    return lines
