"""Everything `seawatch run` runs beside the pipeline: the health checks, the HTTP server
and systemd notification, started before the models load and stopped after the drain."""

from __future__ import annotations

import logging
from types import TracebackType

from seawatch.config import Settings
from seawatch.health.checks import HealthMonitor, Heartbeat
from seawatch.health.prometheus import PipelineCollector, pipeline_registry
from seawatch.health.server import HealthServer, start_health_server
from seawatch.health.systemd import SystemdNotifier
from seawatch.stats import PipelineStats

log = logging.getLogger(__name__)


class Operations:
    """Start with ``with Operations(settings, stats) as ops:``; call :meth:`attach` once the
    pipeline is built (ready, ``READY=1``) and :meth:`stopping` when the drain begins."""

    def __init__(
        self,
        settings: Settings,
        stats: PipelineStats,
        *,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.heartbeat = Heartbeat()
        self.monitor = HealthMonitor(settings, self.heartbeat)
        self.notifier = notifier or SystemdNotifier()
        self._pipeline = None
        self.registry = pipeline_registry(
            PipelineCollector(
                stats, lambda: self._pipeline, self.monitor.ready, self.heartbeat.age_s
            )
        )
        self.server: HealthServer | None = None

    def __enter__(self) -> Operations:
        if self.settings.http.enabled:
            self.server = start_health_server(self.settings.http, self.monitor, self.registry)
            self.monitor.start()
        return self

    def attach(self, pipeline) -> None:
        """The pipeline is built: probes may answer ready; systemd hears ``READY=1`` and
        its watchdog is fed while the loop turns."""
        self._pipeline = pipeline
        self.heartbeat.beat()
        self.monitor.pipeline_ready = True
        if self.notifier.notify("READY=1"):
            log.info("systemd_notified state=READY")
        self.notifier.start_watchdog(self.monitor.alive)

    def stopping(self) -> None:
        """The drain has begun: not ready any more; systemd hears ``STOPPING=1`` (once, though
        both the signal handler and the end of the run call this)."""
        if self.monitor.stopping:
            return
        self.monitor.stopping = True
        self.notifier.notify("STOPPING=1")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.notifier.stop()
        if self.server is not None:
            self.server.close()
            self.monitor.stop()


__all__ = ["Operations"]
