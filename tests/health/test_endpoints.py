"""`/healthz`, `/livez` and `/metrics` of a running `seawatch run` (a child process) against
the real Tansu broker and VictoriaMetrics as InfluxDB."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seawatch.ingest.broker import EmbeddedBroker
from tests.daemon_process import DaemonProcess, daemon_env, stored_count
from tests.integration.helpers import publish_synthetic, settings_for

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""  # not listening (yet)


def _health(base: str) -> tuple[int, dict]:
    status, body = _get(f"{base}/healthz")
    return status, (json.loads(body) if body else {})


def _metrics(base: str) -> dict[tuple[str, tuple], float]:
    _, body = _get(f"{base}/metrics")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _handled(m: dict[tuple[str, tuple], float]) -> tuple[float, float]:
    """(frames stored, dead letters) in a scrape."""
    dead = sum(v for (name, _), v in m.items() if name == "seawatch_dead_letters_total")
    return m.get(("seawatch_frames_total", ()), 0), dead


def _reached(values: tuple[float, float], wanted: tuple[float, float]) -> bool:
    return all(value >= want for value, want in zip(values, wanted, strict=True))


def test_ready_metrics_and_a_broker_outage(tmp_path, unique, model_dir, victoria):
    with EmbeddedBroker() as broker:  # its own: this test stops it
        settings = settings_for(
            tmp_path, broker, unique, model_dir, storage__influx__url=victoria.url
        )
        env = daemon_env(settings)
        base = f"http://127.0.0.1:{env['SEAWATCH_HTTP__PORT']}"
        broken = publish_synthetic(settings, 150, seed=3, broken_share=0.1)
        valid = 150 - broken
        store = settings.storage.local.path
        with DaemonProcess(env, tmp_path / "daemon.log") as daemon:
            daemon.wait_for(lambda: _health(base)[0] == 200, 90, "ready")
            report = _health(base)[1]
            assert report["status"] == "ready"
            assert set(report["checks"]) == {"broker", "local_store", "influxdb"}
            assert all(check["ok"] for check in report["checks"].values()), report
            assert _get(f"{base}/livez")[0] == 200
            daemon.wait_for(lambda: stored_count(store) >= valid, 90, "the frames")
            # Dead letters are counted when polled; the last broken messages may come in a
            # poll after the last valid frame's, so wait for both totals.
            daemon.wait_for(
                lambda: _reached(_handled(_metrics(base)), (valid, broken)),
                10,
                "totals in /metrics",
            )
            m = _metrics(base)
            assert m[("seawatch_frames_total", ())] == valid
            dead = _handled(m)[1]
            assert dead == broken > 0
            assert m[("seawatch_latency_seconds_count", ())] == valid
            assert m[("seawatch_latency_seconds_bucket", (("le", "+Inf"),))] == valid
            assert m[("seawatch_objects_total", ())] > 0
            assert ("seawatch_outbox_backlog_lines", ()) in m
            assert m[("seawatch_ready", ())] == 1.0
            assert m[("process_resident_memory_bytes", ())] > 10e6

            broker.stop()  # not ready within a check interval (5 s) or two; still alive
            daemon.wait_for(lambda: _health(base)[0] == 503, 30, "not ready")
            report = _health(base)[1]
            assert report["status"] == "not ready"
            assert not report["checks"]["broker"]["ok"]
            assert report["checks"]["local_store"]["ok"]
            assert _get(f"{base}/livez")[0] == 200
            assert _metrics(base)[("seawatch_ready", ())] == 0.0

            broker.start()
            daemon.wait_for(lambda: _health(base)[0] == 200, 60, "ready again")
            code, seconds = daemon.terminate()
        assert code == 0 and seconds < 10, daemon.log()[-3000:]
        assert "http_serving" in daemon.log()


def test_a_taken_port_fails_at_start_naming_the_setting(tmp_path, broker, unique, model_dir):
    import socket

    settings = settings_for(tmp_path, broker, unique, model_dir)
    env = daemon_env(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["SEAWATCH_HTTP__PORT"])))
        taken.listen()
        with DaemonProcess(env, tmp_path / "daemon.log") as daemon:
            code = daemon.wait(60)
            log = daemon.log()
    assert code != 0
    assert "http.port" in log and "SEAWATCH_HTTP__PORT" in log
    assert "Traceback" not in log
