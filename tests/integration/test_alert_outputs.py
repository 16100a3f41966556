"""Alerts end to end: the daemon on the real broker fires rules on fish and otolith frames,
and every alert reaches the Kafka ``alerts`` topic (JSON v1), a webhook (a local HTTP
server) and the ``alerts`` measurement in the real VictoriaMetrics."""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import pytest

from seawatch.storage.local_store import open_readonly
from tests.integration.helpers import read_topic, run_until
from tests.integration.test_tasks import _publish, _settings

pytestmark = pytest.mark.integration


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict]] = []
    failures_left: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).failures_left > 0:  # the first answer is an error: the sender retries
            type(self).failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        type(self).bodies.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook_url():
    _Receiver.bodies, _Receiver.failures_left = [], 1
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_alerts_reach_kafka_the_webhook_and_influx(
    tmp_path, broker, unique, model_dir, otolith_model_dir, fish_model_dir, victoria, webhook_url
):
    settings = _settings(
        tmp_path,
        broker,
        unique,
        (model_dir, otolith_model_dir, fish_model_dir),
        storage__influx__url=victoria.url,
        alerts__topic=f"t{unique}.alerts",
        alerts__webhooks=[{"url": webhook_url, "backoff_s": 0.05}],
        alerts__rules=[
            {"name": "oto", "kind": "otolith_anomaly", "severity": "warning"},
            {"name": "new-fish", "kind": "new_individual", "severity": "info"},
        ],
    )
    messages = _publish(settings, 60, seed=9)
    run_until(settings, len(messages))

    db = open_readonly(settings.storage.local.path)
    flagged = {r[0] for r in db.execute("SELECT specimen_id FROM otolith WHERE anomaly = 1")}
    enrolled = {r[0] for r in db.execute("SELECT individual FROM fish WHERE new_individual = 1")}
    expected = {("oto", s) for s in flagged} | {("new-fish", f) for f in enrolled}
    assert enrolled  # strangers are in the stream: at least one new fish

    records = read_topic(settings.kafka.bootstrap_servers, settings.alerts.topic, len(expected))
    on_kafka = [json.loads(r.value) for r in records]
    assert {(a["rule"], a["subject"]) for a in on_kafka} == expected
    assert all(a["schema_version"] == 1 and a["evidence"]["frame_ref"] for a in on_kafka)
    for alert in on_kafka:
        if alert["rule"] == "oto":
            assert alert["evidence"]["thumbnail"] and alert["value"] > alert["threshold"]

    assert {(a["rule"], a["subject"]) for a in _Receiver.bodies} == expected  # after a 503
    assert sorted(a["id"] for a in _Receiver.bodies) == sorted(a["id"] for a in on_kafka)

    series = victoria.export('{__name__=~"alerts_.*"}')
    values = [s for s in series if s["metric"]["__name__"] == "alerts_value"]
    by_rule: dict[str, int] = {}
    for s in values:
        by_rule[s["metric"]["rule"]] = by_rule.get(s["metric"]["rule"], 0) + len(s["values"])
    assert by_rule == {
        rule: sum(r == rule for r, _ in expected) for rule in {r for r, _ in expected}
    }
