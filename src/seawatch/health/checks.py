"""Readiness and liveness: what `/healthz` and `/livez` answer, and what feeds the watchdog.

Readiness means the daemon can do its job: the models are loaded and the pipeline built,
the Kafka broker answers, and every configured store is reachable (the local SQLite store
writable, InfluxDB answering its ``/ping``). Checks run on their own thread every
``interval_s`` with their own clients (kafka-python's consumer is not thread-safe), so a
probe reads a cached answer and never waits on a server.

Liveness means the pipeline loop is turning: its :class:`Heartbeat` was beaten within
``stall_s``. A broker or InfluxDB outage makes the daemon not ready but leaves it alive
(it waits and buffers); only a stuck loop makes it not alive, and worth restarting.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from seawatch.config import Settings

log = logging.getLogger(__name__)


class Heartbeat:
    """The time the pipeline loop last turned (monotonic seconds)."""

    def __init__(self) -> None:
        self.at = time.monotonic()

    def beat(self) -> None:
        self.at = time.monotonic()

    def age_s(self) -> float:
        return time.monotonic() - self.at


@dataclass
class CheckResult:
    """One dependency's state as of ``checked_at``."""

    ok: bool
    detail: str = ""
    checked_at: float = field(default_factory=time.time)


class _BrokerCheck:
    """Asks the Kafka cluster to describe itself, over a client of its own."""

    def __init__(self, settings: Settings, timeout_ms: int) -> None:
        self.kafka = settings.kafka
        self.timeout_ms = timeout_ms
        self._admin = None

    def __call__(self) -> CheckResult:
        from kafka.admin import KafkaAdminClient

        from seawatch.ingest.kafka_security import client_kwargs

        try:
            if self._admin is None:
                kwargs = {**client_kwargs(self.kafka), "bootstrap_timeout_ms": self.timeout_ms}
                self._admin = KafkaAdminClient(
                    **kwargs, client_id="seawatch-health", request_timeout_ms=self.timeout_ms
                )
            cluster = self._admin.describe_cluster()
        except Exception as exc:  # any failure means "not reachable now"; try afresh next time
            self.close()
            return CheckResult(False, f"{type(exc).__name__}: {exc}"[:300])
        brokers = len(cluster.get("brokers", [])) if isinstance(cluster, dict) else 0
        return CheckResult(True, f"{brokers} broker(s)")

    def close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # closing a broken client: nothing to save
                log.debug("health admin client close failed", exc_info=True)
            self._admin = None


def _local_store_check(path) -> Callable[[], CheckResult]:
    def check() -> CheckResult:
        try:
            # a connection's `with` only ends a transaction; closing() closes it as well
            with contextlib.closing(sqlite3.connect(path, timeout=2)) as db:
                db.execute("BEGIN IMMEDIATE")  # takes the write lock: writable, not only there
                db.rollback()
        except sqlite3.Error as exc:
            return CheckResult(False, f"{path}: {exc}")
        return CheckResult(True, str(path))

    return check


def _influx_check(url: str, timeout_s: float) -> Callable[[], CheckResult]:
    from seawatch.secrets import redact_url

    ping = url.rstrip("/") + "/ping"

    def check() -> CheckResult:
        try:
            with urllib.request.urlopen(ping, timeout=timeout_s) as response:
                status = response.status
        except Exception as exc:  # refused, timed out, HTTP error: not reachable now
            return CheckResult(False, f"{redact_url(url)}: {type(exc).__name__}: {exc}"[:300])
        return CheckResult(status < 300, f"{redact_url(url)} answered {status}")

    return check


class HealthMonitor:
    """Runs the dependency checks every ``interval_s`` on a thread; answers from the cache."""

    def __init__(
        self, settings: Settings, heartbeat: Heartbeat, *, interval_s: float = 5.0
    ) -> None:
        self.heartbeat = heartbeat
        self.stall_s = settings.http.stall_s
        self.interval_s = interval_s
        self.pipeline_ready = False  # set once models are loaded and the pipeline is built
        self.stopping = False
        timeout_ms = int(min(interval_s, 5.0) * 1000)
        self._broker = _BrokerCheck(settings, timeout_ms)
        self._checks: dict[str, Callable[[], CheckResult]] = {"broker": self._broker}
        storage = settings.storage
        if storage.local.enabled:
            self._checks["local_store"] = _local_store_check(storage.local.path)
        if storage.influx.url:
            self._checks["influxdb"] = _influx_check(storage.influx.url, timeout_ms / 1000)
        self.results: dict[str, CheckResult] = {
            name: CheckResult(False, "not checked yet", 0.0) for name in self._checks
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> HealthMonitor:
        self._thread.start()
        return self

    def check_now(self) -> None:
        """Run every check once (the thread does this every ``interval_s``)."""
        for name, check in self._checks.items():
            result = check()
            previous = self.results.get(name)
            if previous is not None and previous.checked_at and previous.ok != result.ok:
                level = logging.INFO if result.ok else logging.WARNING
                log.log(
                    level, "health_changed check=%s ok=%s detail=%r", name, result.ok, result.detail
                )
            self.results[name] = result

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_now()
            self._stop.wait(self.interval_s)

    def alive(self) -> bool:
        """The pipeline loop turned within ``http.stall_s`` (or it is still being built)."""
        return not self.pipeline_ready or self.heartbeat.age_s() < self.stall_s

    def ready(self) -> bool:
        """Built, alive, not stopping, and every dependency reachable at the last check."""
        return (
            self.pipeline_ready
            and not self.stopping
            and self.alive()
            and all(r.ok for r in self.results.values())
        )

    def report(self) -> dict:
        """The JSON body of ``/healthz``: the verdict and each check's state."""
        if not self.pipeline_ready:
            status = "starting"
        elif self.stopping:
            status = "stopping"
        else:
            status = "ready" if self.ready() else "not ready"
        return {
            "status": status,
            "loop_age_s": round(self.heartbeat.age_s(), 3),
            "checks": {
                name: {"ok": r.ok, "detail": r.detail, "checked_at": r.checked_at}
                for name, r in self.results.items()
            },
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 6)
        self._broker.close()


__all__ = ["CheckResult", "HealthMonitor", "Heartbeat"]
