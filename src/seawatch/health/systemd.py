"""systemd's notify protocol: ``READY=1`` once the daemon works, ``WATCHDOG=1`` while its
loop turns, ``STOPPING=1`` on the way out.

A datagram to the socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
namespace); without that variable (not started by systemd with ``Type=notify``) every call
is a no-op. With ``WatchdogSec=`` set, systemd passes ``$WATCHDOG_USEC`` and kills the
service when no ``WATCHDOG=1`` arrives in time; the feeder thread sends one every half of
that, but only while ``alive()`` says the loop is turning, so a stuck daemon is restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state lines to systemd; feeds its watchdog from a thread while ``alive()``."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        meant_for_us = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and meant_for_us else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send ``state`` (e.g. ``"READY=1"``); False when not under systemd or it failed."""
        if self.address is None:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(state.encode())
        except OSError as exc:
            log.warning("systemd_notify_failed state=%s error=%s", state.split("=")[0], exc)
            return False
        return True

    def start_watchdog(self, alive: Callable[[], bool]) -> None:
        """Feed the watchdog every ``WATCHDOG_USEC / 2`` while ``alive()``."""
        if not self.enabled or self.watchdog_s is None or self._thread is not None:
            return
        interval = self.watchdog_s / 2

        def feed() -> None:
            starved = False
            while not self._stop.wait(interval):
                if alive():
                    self.notify("WATCHDOG=1")
                    starved = False
                elif not starved:
                    log.error(
                        "watchdog_starved reason='pipeline loop stalled' effect='systemd "
                        "restarts the service when WatchdogSec runs out'"
                    )
                    starved = True

        self._thread = threading.Thread(target=feed, name="systemd-watchdog", daemon=True)
        self._thread.start()
        log.info("systemd_watchdog interval_s=%.1f", interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


__all__ = ["SystemdNotifier"]
