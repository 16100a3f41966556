"""No secret reaches the logs: ``seawatch run`` at DEBUG, with every kind of secret set,
driven through frames, alerts and a failing webhook, then SIGTERM; stdout and stderr are
scanned for every secret value.

The secrets, and where each one goes (the servers record what they receive, so the test
also proves that each secret was *used*, not merely left out):

- the InfluxDB token, from a file (``SEAWATCH_STORAGE__INFLUX__TOKEN_FILE``): sent as
  ``Authorization: Token ...`` to a stand-in InfluxDB write endpoint (an HTTP server here);
- the Grafana token, from the environment: only in the settings (``run`` does not call
  Grafana), so only the masked start-up log could leak it;
- the Kafka SASL password, from the environment: the daemon logs in with SCRAM-SHA-512 over
  TLS to the test gateway (``kafka_gateway.py``) in front of a real Tansu;
- two webhooks whose URLs carry a key in the query string and whose ``Authorization``
  headers carry a bearer token; one answers 200, the other 403, so ``webhook_failed`` is
  logged with its (redacted) URL.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from typing import ClassVar

import pytest
from pydantic import SecretStr

from seawatch.config import KafkaSettings
from seawatch.ingest.broker import free_port
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from tests.daemon_process import DaemonProcess, stored_count
from tests.security.kafka_gateway import KafkaGateway, make_pki, tansu

pytestmark = pytest.mark.integration

INFLUX_TOKEN = "influx-tok-5b0e-from-file"
GRAFANA_TOKEN = "grafana-tok-91c2-from-env"
SASL_PASSWORD = "sasl-pw-3e77-from-env"
HOOK_KEY_OK = "hook-key-a14f-query"
HOOK_KEY_FAIL = "hook-key-c0d9-query"
BEARER_OK = "bearer-6d2a-header"
BEARER_FAIL = "bearer-f81b-header"
SECRETS = (
    INFLUX_TOKEN,
    GRAFANA_TOKEN,
    SASL_PASSWORD,
    HOOK_KEY_OK,
    HOOK_KEY_FAIL,
    BEARER_OK,
    BEARER_FAIL,
)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers InfluxDB writes (204) and webhooks (200, or 403 under /reject); records the
    path and the Authorization header of every request."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.path, self.headers.get("Authorization", "")))
        if self.path.startswith("/reject"):
            self.send_response(403)
        elif self.path.startswith("/api/v2/write"):
            self.send_response(204)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_run_at_debug_logs_no_secret(tmp_path, unique, model_dir, recorder):
    pki = make_pki(tmp_path / "pki")
    token_file = tmp_path / "influx-token"
    token_file.write_text(INFLUX_TOKEN + "\n")
    token_file.chmod(0o600)
    store = tmp_path / "store.db"
    port = free_port()
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        topics=[f"t{unique}.frames.plankton"],
        dlq_topic=f"t{unique}.frames.dlq",
        group_id=f"g{unique}",
        security_protocol="SASL_SSL",
        ssl_cafile=pki.ca,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="seawatch",
        sasl_password=SecretStr(SASL_PASSWORD),
        partitions=2,
    )
    webhooks = (
        f'[{{"url": "{recorder}/hook?key={HOOK_KEY_OK}", "headers": '
        f'{{"Authorization": "Bearer {BEARER_OK}"}}}}, '
        f'{{"url": "{recorder}/reject/hook?key={HOOK_KEY_FAIL}", "max_retries": 0, '
        f'"headers": {{"Authorization": "Bearer {BEARER_FAIL}"}}}}]'
    )
    env = {
        **os.environ,
        "SEAWATCH_LOG_LEVEL": "DEBUG",
        "SEAWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SEAWATCH_HTTP__PORT": str(free_port()),
        "SEAWATCH_KAFKA__TOPICS": f'["{kafka.topics[0]}"]',
        "SEAWATCH_KAFKA__DLQ_TOPIC": kafka.dlq_topic,
        "SEAWATCH_KAFKA__GROUP_ID": kafka.group_id,
        "SEAWATCH_KAFKA__PARTITIONS": "2",
        "SEAWATCH_KAFKA__MAX_POLL_INTERVAL_MS": "6000",
        "SEAWATCH_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "SEAWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "SEAWATCH_KAFKA__SSL_CAFILE": str(pki.ca),
        "SEAWATCH_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "SEAWATCH_KAFKA__SASL_USERNAME": "seawatch",
        "SEAWATCH_KAFKA__SASL_PASSWORD": SASL_PASSWORD,
        "SEAWATCH_TASKS__PLANKTON__MODEL_DIR": str(model_dir),
        "SEAWATCH_STORAGE__LOCAL__PATH": str(store),
        "SEAWATCH_STORAGE__INFLUX__URL": recorder,
        "SEAWATCH_STORAGE__INFLUX__TOKEN_FILE": str(token_file),
        "SEAWATCH_STORAGE__METRICS_INTERVAL_S": "0.5",
        "SEAWATCH_DASHBOARDS__GRAFANA__URL": "http://127.0.0.1:1",
        "SEAWATCH_DASHBOARDS__GRAFANA__TOKEN": GRAFANA_TOKEN,
        "SEAWATCH_ALERTS__TOPIC": f"t{unique}.alerts",
        "SEAWATCH_ALERTS__TICK_S": "0.2",
        "SEAWATCH_ALERTS__RULES": '[{"name": "silent", "kind": "instrument_silent", '
        '"silent_s": 1.0, "severity": "critical"}]',
        "SEAWATCH_ALERTS__WEBHOOKS": webhooks,
    }
    n = 40
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(
            upstream,
            port=port,
            tls=(pki.server_cert, pki.server_key),
            users={"seawatch": SASL_PASSWORD},
        ) as gateway,
    ):
        ensure_topics(kafka, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
        publisher = Publisher(kafka)
        try:
            messages = synthetic_stream(n, seed=5, start_ns=time.time_ns() - n * 10**6)
            publish_messages(publisher, kafka.topics[0], messages)
        finally:
            publisher.close()
        with DaemonProcess(env, tmp_path / "daemon.log") as daemon:
            daemon.wait_for(lambda: stored_count(store) >= n, 90, "the frames")
            assert stored_count(store) == n

            def _both_hooks_called() -> bool:
                paths = [path for path, _ in _Recorder.seen]
                return any(p.startswith("/hook") for p in paths) and any(
                    p.startswith("/reject") for p in paths
                )

            daemon.wait_for(_both_hooks_called, 30, "both webhooks")
            code, _ = daemon.terminate(timeout_s=30)
            logs = daemon.log()  # stdout and stderr, as the daemon printed them
    assert code == 0, logs[-3000:]
    assert gateway.attempts >= 2 and gateway.refused == 0  # the daemon logged in

    # each secret was used where it belongs...
    seen = dict(_Recorder.seen)
    writes = [auth for path, auth in _Recorder.seen if path.startswith("/api/v2/write")]
    assert writes and set(writes) == {f"Token {INFLUX_TOKEN}"}
    assert seen[f"/hook?key={HOOK_KEY_OK}"] == f"Bearer {BEARER_OK}"
    assert seen[f"/reject/hook?key={HOOK_KEY_FAIL}"] == f"Bearer {BEARER_FAIL}"
    # ...the logs are at DEBUG and cover the start, the failed webhook and the stop...
    assert "level=DEBUG" in logs
    assert '"token":"**********"' in logs and '"sasl_password":"**********"' in logs
    assert "webhook_failed url=http://127.0.0.1:" in logs
    assert "/reject/***?key=***" in logs
    assert "stopping signal=SIGTERM" in logs
    # ...and none of them appears anywhere in what the daemon printed
    leaked = [secret for secret in SECRETS if secret in logs]
    assert not leaked, f"secrets in the logs: {leaked}"
