"""Where alerts go: the ``alerts`` measurement (through the InfluxDB outbox), a Kafka topic
(JSON, schema version 1, keyed by alert id) and webhooks (HTTP POST of the same JSON,
retried with backoff and jitter on a background thread so the pipeline never waits)."""

from __future__ import annotations

import logging
import queue
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence

from seawatch.alert_settings import WebhookSettings
from seawatch.alerts.model import Alert
from seawatch.contracts.delivery import backoff_delay, retriable_status
from seawatch.contracts.errors import BrokerError
from seawatch.secrets import redact_url

log = logging.getLogger(__name__)


class Webhook:
    """Delivers alerts to one URL in order, each retried up to ``max_retries`` times."""

    def __init__(self, settings: WebhookSettings, *, sleep: Callable[[float], None] | None = None):
        self.settings = settings
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def send(self, alert: Alert) -> None:
        """Queue one alert for delivery."""
        self._queue.put(alert)

    def post(self, alert: Alert) -> None:
        """One POST; raises on a network error or a non-2xx answer."""
        request = urllib.request.Request(
            self.settings.url,
            data=alert.to_json(),
            method="POST",
            headers={"Content-Type": "application/json", **self.settings.headers},
        )
        with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
            response.read()

    def _deliver(self, alert: Alert) -> None:
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self.post(alert)
                self.delivered += 1
                return
            except OSError as exc:  # URLError and HTTPError (a non-2xx answer) included
                retriable = retriable_status(getattr(exc, "code", None))
                if not retriable or attempt == attempts:
                    self.failed += 1
                    log.error(
                        "webhook_failed url=%s alert=%s attempts=%d error=%s",
                        redact_url(self.settings.url),  # its query may hold a key
                        alert.id,
                        attempt,
                        exc,
                    )
                    return
                self._sleep(backoff_delay(self.settings.backoff_s, attempt, 60.0))

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._deliver(alert)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._stop.set()


class AlertOutputs:
    """Fans alerts out to the configured outputs; counts them."""

    def __init__(
        self,
        *,
        influx=None,
        publisher=None,
        topic: str | None = None,
        webhooks: Sequence[Webhook] = (),
    ) -> None:
        self.influx = influx  # an OutboxSink (or anything with add_lines and flush)
        self.publisher = publisher
        self.topic = topic
        self.webhooks = list(webhooks)
        self.emitted = 0
        self.emitted_by: Counter[tuple[str, str]] = Counter()  # (rule, severity)
        self.kafka_failed = 0
        self._sent: list = []  # the Kafka sends not yet flushed (their futures)
        self._next: dict[int, int] = {}  # alerts partition -> after our last acknowledged one

    def emit(self, alerts: Sequence[Alert], *, flush: bool = False) -> None:
        """Queue ``alerts`` on every output. The InfluxDB lines and Kafka messages become
        durable with the batch's own flush (before its offsets are committed), or now when
        ``flush`` (alerts from the clock, outside any batch)."""
        if not alerts:
            return
        for alert in alerts:
            log.warning("alert rule=%s severity=%s %s", alert.rule, alert.severity, alert.message)
            if self.publisher is not None and self.topic:
                self._to_kafka(alert)
            for webhook in self.webhooks:
                webhook.send(alert)
        if self.influx is not None:
            self.influx.add_lines([a.to_line() for a in alerts])
        self.emitted += len(alerts)
        self.emitted_by.update((a.rule, a.severity) for a in alerts)
        if flush:
            if self.influx is not None:
                self.influx.flush()
            self.flush_kafka()

    def _to_kafka(self, alert: Alert) -> None:
        from kafka.errors import KafkaError

        try:  # keyed by id: a compacted alerts topic keeps one copy of each alert
            self._sent.append(
                self.publisher.send(self.topic, alert.to_json(), alert.id.encode(), [])
            )
        except KafkaError as exc:  # the topic gone (broker restarted) and not back in time
            self.kafka_failed += 1
            log.warning("alert_kafka_failed rule=%s error=%s", alert.rule, type(exc).__name__)

    def flush_kafka(self) -> None:
        """Block until the broker has the alerts' Kafka copies. A broker that cannot take them
        is logged, not raised: the InfluxDB copy (the outbox) is the durable one."""
        from kafka.errors import KafkaError

        if self.publisher is None or not self.topic:
            return
        try:
            self.publisher.flush()
        except (BrokerError, KafkaError) as exc:
            self.kafka_failed += 1
            log.warning("alert_kafka_failed error=%s", exc)
        sent, self._sent = self._sent, []
        for future in sent:
            if future.is_done and future.succeeded():
                meta = future.value
                self._next[meta.partition] = max(self._next.get(meta.partition, 0), meta.offset + 1)

    def sent_positions(self) -> dict[int, int]:
        """Per partition of the alerts topic, the offset after the last alert this process
        saw acknowledged there: every alert it sends later lies at or after it."""
        return dict(self._next)

    def close(self) -> None:
        for webhook in self.webhooks:
            webhook.close()


__all__ = ["AlertOutputs", "Webhook"]
