"""The HTTP endpoints: ``/healthz`` (ready), ``/livez`` (alive) and ``/metrics``.

A small threaded server from the standard library on ``http.host:http.port``; it starts
before the models load, so probes get an answer ("starting", 503) from the first second.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from seawatch.config import ENV_PREFIX, HttpSettings
from seawatch.contracts.errors import ConfigError
from seawatch.health.checks import HealthMonitor

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        monitor = self.server.monitor
        if path == "/healthz":
            ready = monitor.ready()
            body = json.dumps(monitor.report(), indent=1).encode()
            self._reply(200 if ready else 503, "application/json", body)
        elif path == "/livez":
            alive = monitor.alive()
            body = json.dumps(
                {
                    "status": "alive" if alive else "stalled",
                    "loop_age_s": round(monitor.heartbeat.age_s(), 3),
                }
            ).encode()
            self._reply(200 if alive else 503, "application/json", body)
        elif path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        else:
            self._reply(404, "text/plain", b"not found: try /healthz, /livez or /metrics\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("http %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, monitor: HealthMonitor, registry: CollectorRegistry) -> None:
        self.monitor = monitor
        self.registry = registry
        super().__init__(address, _Handler)


class HealthServer:
    """The running server; :meth:`close` stops it."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_health_server(
    settings: HttpSettings, monitor: HealthMonitor, registry: CollectorRegistry
) -> HealthServer:
    """Listen on ``settings.host:settings.port``; a port that cannot be had is a
    :class:`ConfigError` naming the setting to change."""
    try:
        server = _Server((settings.host, settings.port), monitor, registry)
    except OSError as exc:
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
        msg = (
            f"http.port {settings.port} on {settings.host} {why}; set {ENV_PREFIX}HTTP__PORT "
            f"to a free port (or {ENV_PREFIX}HTTP__ENABLED=false to serve no endpoints)"
        )
        raise ConfigError(msg) from exc
    log.info(
        "http_serving address=%s:%d endpoints=/healthz,/livez,/metrics",
        settings.host,
        server.server_address[1],
    )
    return HealthServer(server)


__all__ = ["HealthServer", "start_health_server"]
