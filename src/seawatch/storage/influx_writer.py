"""The InfluxDB sink: synchronous batched writes of line protocol with retries and backoff.

Uses ``influxdb-client``'s v2 write API, which InfluxDB 2.x/3.x (and 1.8+ with a token of
``user:password``) and VictoriaMetrics accept. A flush returns only when the server has
acknowledged every line; after ``max_retries`` failed attempts it raises
:class:`~seawatch.contracts.errors.StorageError` and the pipeline commits nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from seawatch.config import InfluxSettings
from seawatch.contracts.delivery import backoff_delay, retriable_status
from seawatch.contracts.errors import StorageError
from seawatch.contracts.records import FrameRecord
from seawatch.storage.line_protocol import records_to_lines

log = logging.getLogger(__name__)


class InfluxWriter:
    """A :class:`~seawatch.storage.sink.Sink` writing to InfluxDB."""

    name = "influx"

    def __init__(
        self, settings: InfluxSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        try:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS
        except ImportError as exc:  # pragma: no cover - a core dependency
            msg = "influxdb-client is missing; install seawatch with its dependencies"
            raise StorageError(msg) from exc
        if settings.url is None:
            raise StorageError("storage.influx.url is not set; the InfluxDB sink needs it")
        self.settings = settings
        self._sleep = sleep
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=settings.timeout_ms,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._pending: list[str] = []

    def add(self, records: Sequence[FrameRecord]) -> None:
        """Turn records into line protocol and queue it."""
        self._pending.extend(records_to_lines(records))

    def flush(self) -> None:
        """Write everything queued, in batches, each retried with backoff and jitter."""
        try:
            size = self.settings.batch_size
            for start in range(0, len(self._pending), size):
                self._write_with_retry(self._pending[start : start + size])
        finally:
            self._pending.clear()

    def send(self, body: str) -> None:
        """One write attempt of newline-separated lines; returns when acknowledged.

        Raises :class:`WriteRefused`, whose ``retriable`` says whether trying again can help
        (no answer, 429, 5xx) or not (any other 4xx: the lines themselves are refused).
        """
        try:
            self._write_api.write(bucket=self.settings.bucket, record=body)
        except Exception as exc:  # the client raises ApiException or urllib3 errors
            retriable = retriable_status(getattr(exc, "status", None))
            message = f"InfluxDB at {self.settings.url}: {_short(exc)}"
            raise WriteRefused(message, retriable) from exc

    def _write_with_retry(self, lines: list[str]) -> None:
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self.send("\n".join(lines))
                return
            except WriteRefused as exc:
                if not exc.retriable or attempt == attempts:
                    msg = f"{exc}: refused {len(lines)} lines after {attempt} attempt(s)"
                    raise StorageError(msg) from exc
                delay = backoff_delay(self.settings.retry_backoff_s, attempt, float("inf"))
                log.warning("influx_retry attempt=%d delay_s=%.2f error=%s", attempt, delay, exc)
                self._sleep(delay)

    def close(self) -> None:
        """Flush what is queued and close the HTTP client."""
        try:
            self.flush()
        finally:
            self._write_api.close()
            self._client.close()


class WriteRefused(StorageError):
    """One write attempt failed; ``retriable`` says whether another attempt can succeed."""

    def __init__(self, message: str, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


__all__ = ["InfluxWriter", "WriteRefused"]
