"""The InfluxDB sink through the durable outbox: the pipeline never waits for the database.

:class:`OutboxSink` is what the pipeline flushes: its ``flush`` returns once the batch's line
protocol is in the outbox file, so offsets are committed while InfluxDB is down. A
:class:`Drainer` thread forwards the outbox to InfluxDB in batches, retrying with capped
exponential backoff and jitter for as long as the server is unreachable, and deletes lines
only after the server acknowledged them. When the backlog reaches ``outbox.max_lines`` the
sink reports :meth:`OutboxSink.saturated` and the pipeline pauses consumption (backpressure)
until the drainer has caught up; nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from seawatch.config import InfluxSettings, OutboxSettings
from seawatch.contracts.delivery import backoff_delay
from seawatch.contracts.records import FrameRecord
from seawatch.storage.influx_writer import InfluxWriter, WriteRefused
from seawatch.storage.line_protocol import records_to_lines
from seawatch.storage.outbox import Outbox

log = logging.getLogger(__name__)


class Drainer:
    """A thread that moves the outbox into InfluxDB, oldest first."""

    def __init__(
        self,
        outbox: Outbox,
        writer: InfluxWriter,
        *,
        batch_lines: int,
        base_backoff_s: float,
        max_backoff_s: float,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.writer = writer
        self.batch_lines = batch_lines
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.delivered_lines = 0
        self.failed_attempts = 0
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread = threading.Thread(target=self._run, name="influx-drainer", daemon=True)

    def start(self) -> Drainer:
        self._thread.start()
        return self

    def drain_once(self) -> int:
        """Send the oldest batch once; return the lines acknowledged (0 if nothing pending).

        Raises :class:`WriteRefused` when the server could not be reached or refused the
        lines; a refusal that cannot succeed on retry moves the lines to ``rejected`` first.
        """
        chunks = self.outbox.oldest(self.batch_lines)
        if not chunks:
            return 0
        try:
            self.writer.send("\n".join(c.body for c in chunks))
        except WriteRefused as exc:
            if not exc.retriable:
                self._refused(chunks, str(exc))
            raise
        self.outbox.remove(chunks)
        lines = sum(c.line_count for c in chunks)
        self.delivered_lines += lines
        return lines

    def _refused(self, chunks: list, reason: str) -> None:
        if len(chunks) > 1:  # find the bad chunk: send the good ones one by one
            for chunk in chunks:
                try:
                    self.writer.send(chunk.body)
                except WriteRefused as exc:
                    if exc.retriable:
                        return  # the server went away; retry the rest later
                    self.outbox.reject([chunk], str(exc))
                    log.error("influx_rejected lines=%d reason=%s", chunk.line_count, exc)
                else:
                    self.outbox.remove([chunk])
                    self.delivered_lines += chunk.line_count
            return
        self.outbox.reject(chunks, reason)
        log.error("influx_rejected lines=%d reason=%s", chunks[0].line_count, reason)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                sent = self.drain_once()
            except WriteRefused as exc:
                self.failed_attempts += 1
                if not exc.retriable:
                    continue
                attempt += 1
                delay = backoff_delay(self.base_backoff_s, attempt, self.max_backoff_s)
                log.warning(
                    "influx_unreachable attempt=%d retry_in_s=%.2f backlog_lines=%d error=%s",
                    attempt,
                    delay,
                    self.outbox.backlog,
                    exc,
                )
                self._sleep(delay)
                continue
            except Exception:  # never let the thread die silently; the lines stay on disk
                log.exception("influx_drainer_error")
                self._sleep(self.max_backoff_s)
                continue
            if attempt:
                log.info("influx_recovered after_attempts=%d", attempt)
                attempt = 0
            if not sent:
                self.outbox.wait_for_change(0.5)

    def stop(self, drain_s: float, join_s: float = 1.0) -> bool:
        """Keep draining for up to ``drain_s`` seconds until the outbox is empty, then stop;
        False when a write is still in flight ``join_s`` later (its lines stay on disk)."""
        deadline = time.monotonic() + drain_s
        while self.outbox.backlog and time.monotonic() < deadline and self._thread.is_alive():
            self.outbox.wait_for_change(min(0.2, max(0.0, deadline - time.monotonic())))
        self._stop.set()
        self._thread.join(timeout=join_s)
        return not self._thread.is_alive()


class OutboxSink:
    """A :class:`~seawatch.storage.sink.Sink`: durable in the outbox, drained to InfluxDB."""

    name = "influx"

    def __init__(
        self, influx: InfluxSettings, outbox: OutboxSettings, path, *, writer=None
    ) -> None:
        self.settings = outbox
        self.outbox = Outbox(path)
        self.writer = writer or InfluxWriter(influx)
        self.drainer = Drainer(
            self.outbox,
            self.writer,
            batch_lines=influx.batch_size,
            base_backoff_s=influx.retry_backoff_s,
            max_backoff_s=outbox.max_backoff_s,
        ).start()
        self._pending: list[str] = []
        if self.outbox.backlog:
            log.info("outbox_resumed backlog_lines=%d path=%s", self.outbox.backlog, path)

    def add(self, records: Sequence[FrameRecord]) -> None:
        """Turn records into line protocol and queue it."""
        self._pending.extend(records_to_lines(records))

    def add_lines(self, lines: Sequence[str]) -> None:
        """Queue ready-made lines (alerts, pipeline metrics) with the records' lines."""
        self._pending.extend(lines)

    def flush(self) -> None:
        """Make the queued lines durable in the outbox (not necessarily in InfluxDB yet)."""
        try:
            self.outbox.append(self._pending)
        finally:
            self._pending.clear()

    def saturated(self) -> bool:
        """Whether the backlog reached ``outbox.max_lines`` (the pipeline should pause)."""
        return self.outbox.backlog >= self.settings.max_lines

    @property
    def backlog(self) -> int:
        """Lines not yet acknowledged by InfluxDB."""
        return self.outbox.backlog

    def close(self) -> None:
        """Flush, drain for up to ``outbox.shutdown_drain_s``, close; the rest stays on disk."""
        stopped = True
        try:
            self.flush()
            stopped = self.drainer.stop(self.settings.shutdown_drain_s)
            if self.outbox.backlog:
                log.warning(
                    "outbox_left lines=%d path=%s (sent on the next start)",
                    self.outbox.backlog,
                    self.outbox.path,
                )
        finally:
            if stopped:
                self.writer.close()
                self.outbox.close()
            else:  # a write that hangs must not hold the shutdown past its deadline
                log.warning(
                    "influx_write_in_flight_at_shutdown effect='its lines stay in the outbox "
                    "and are sent again at the next start'"
                )


__all__ = ["Drainer", "OutboxSink"]
