"""Contract test of ``seawatch dashboards apply`` (grafana-client) against a fake Grafana.

No Grafana server can run on these machines (no binary, no network), so a local
``ThreadingHTTPServer`` plays a minimal Grafana: it keeps folders, datasources, dashboards,
alert rules, rule groups and contact points in memory at Grafana's real API paths, answers
like Grafana (404 for a missing object, 401 for a wrong token, server-added fields such as
id, version, updated and provenance), checks every request's method + path, body shape
(required keys and types as Grafana's HTTP API documents them) and the
``Authorization: Bearer`` header, and records it. Shape problems are collected in
``violations``; every test asserts there are none.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from seawatch.config import Settings, load_settings
from seawatch.dashboards.catalog import build_dashboards
from seawatch.dashboards.commands import dashboards_group
from seawatch.dashboards.provision import ProvisioningError, apply
from seawatch.ingest.broker import free_port
from tests.dashboards.fake_grafana import FakeGrafana, Request, _handler

TOKEN = "glsa_test-token-0123456789"
INFLUX_TOKEN = "influx-secret-token-xyz"
HOOK_SECRET = "hook-secret-abc"


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana(TOKEN)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settings(url: str | None, token: str = TOKEN, **overrides: Any) -> Settings:
    hooks = [
        {"url": "https://ops.example/hook", "headers": {"Authorization": f"Bearer {HOOK_SECRET}"}}
    ]
    values: dict[str, Any] = {
        "dashboards__grafana__token": token,
        "storage__influx__url": "http://influx:8086",
        "storage__influx__token": INFLUX_TOKEN,
        "alerts__webhooks": hooks,
    }
    if url is not None:
        values["dashboards__grafana__url"] = url
    return load_settings(**{**values, **overrides})


def _paths(requests: list[Request]) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests]


def test_first_apply_creates_everything(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    settings = _settings(url)
    report = apply(settings)

    n_dash = len(build_dashboards(settings))
    writes = _paths(fake.writes())
    assert writes.count("POST /api/folders") == 1
    assert writes.count("POST /api/datasources") == 1
    assert writes.count("POST /api/dashboards/db") == n_dash
    assert writes.count("POST /api/v1/provisioning/contact-points") == 1
    assert writes.count("POST /api/v1/provisioning/alert-rules") == len(settings.alerts.rules)
    assert len(writes) == 3 + n_dash + len(settings.alerts.rules)
    # The contact point exists before the rules that route to it.
    assert writes.index("POST /api/v1/provisioning/contact-points") < writes.index(
        "POST /api/v1/provisioning/alert-rules"
    )
    assert fake.violations == []
    assert {r.authorization for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert report.count("created") == len(writes)
    assert report.count("unchanged") == 0

    ds = next(r.body for r in fake.writes() if r.path == "/api/datasources")
    assert ds["type"] == "influxdb" and ds["url"] == "http://influx:8086"
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"] == "seawatch"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"] == {"httpHeaderValue1": f"Token {INFLUX_TOKEN}"}
    dash = next(r.body for r in fake.writes() if r.path == "/api/dashboards/db")
    assert dash["folderUid"] == "seawatch" and dash["overwrite"] is True
    assert "id" not in dash["dashboard"] and "version" not in dash["dashboard"]
    assert set(fake.dashboards) == {d["uid"] for d in build_dashboards(settings)}
    contact = next(iter(fake.contacts.values()))
    assert contact["settings"]["authorization_credentials"] == HOOK_SECRET
    assert all(r["notification_settings"] == {"receiver": "seawatch"} for r in fake.rules.values())
    assert {r["title"] for r in fake.rules.values()} == {r.name for r in settings.alerts.rules}


def test_second_apply_only_reads(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    settings = _settings(url)
    first = apply(settings)
    fake.clear()

    second = apply(settings)

    assert fake.requests, "the second run must read the current state"
    assert fake.writes() == []
    assert not second.changed
    assert second.summary() == f"nothing changed ({len(first.changes)} objects up to date)"
    assert fake.violations == []


def test_changed_threshold_updates_exactly_that_rule(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    apply(_settings(url))
    fake.clear()
    rules = [r.model_dump() for r in _settings(url).alerts.rules]
    for rule in rules:
        if rule["kind"] == "unknown_rate":
            rule["max_share"] = 0.45

    report = apply(_settings(url, alerts__rules=rules))

    assert _paths(fake.writes()) == ["PUT /api/v1/provisioning/alert-rules/seawatch-unknown-rate"]
    math = [q["model"] for q in fake.writes()[0].body["data"] if q["model"].get("type") == "math"]
    assert "> 0.45" in math[0]["expression"]
    assert [(c.kind, c.name) for c in report.changes if c.action != "unchanged"] == [
        ("alert rule", "unknown-rate")
    ]
    assert fake.violations == []


def test_removed_rule_webhook_and_new_interval(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    apply(_settings(url))
    fake.clear()
    rules = [r.model_dump() for r in _settings(url).alerts.rules if r.kind != "new_individual"]

    report = apply(
        _settings(url, alerts__rules=rules, alerts__webhooks=[], dashboards__alert_interval="30s")
    )

    writes = _paths(fake.writes())
    # Rules stop routing to the contact point before it is deleted.
    assert writes.count("PUT /api/v1/provisioning/alert-rules/seawatch-unknown-rate") == 1
    assert "DELETE /api/v1/provisioning/alert-rules/seawatch-new-fish" in writes
    assert writes[-1].startswith("DELETE /api/v1/provisioning/contact-points/")
    assert "PUT /api/v1/provisioning/folder/seawatch/rule-groups/seawatch" in writes
    assert fake.intervals[("seawatch", "seawatch")] == 30
    assert "seawatch-new-fish" not in fake.rules and fake.contacts == {}
    assert all("notification_settings" not in r for r in fake.rules.values())
    assert any("no alerts.webhooks" in note for note in report.notes)
    assert fake.violations == []


def test_datasource_without_token_has_no_auth_header(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    apply(_settings(url, storage__influx__token=""))
    ds = fake.datasources["seawatch-influxdb"]
    assert "secureJsonData" not in ds or not ds["secureJsonData"]
    assert "httpHeaderName1" not in ds["jsonData"]


def test_wrong_token_names_the_setting(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    with pytest.raises(ProvisioningError) as caught:
        apply(_settings(url, token="wrong-token-secret"))
    message = str(caught.value)
    assert "SEAWATCH_DASHBOARDS__GRAFANA__TOKEN" in message and "401" in message
    assert "wrong-token-secret" not in message
    assert fake.writes() == []


def test_unset_url_and_unreachable_grafana() -> None:
    with pytest.raises(ProvisioningError, match="SEAWATCH_DASHBOARDS__GRAFANA__URL"):
        apply(_settings(None))
    with pytest.raises(ProvisioningError, match="cannot reach Grafana"):
        apply(_settings(f"http://127.0.0.1:{free_port()}", dashboards__grafana__timeout_s=2))


def test_cli_apply_output_never_shows_secrets(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    settings = _settings(url)
    runner = CliRunner()

    first = runner.invoke(dashboards_group, ["apply"], obj={"settings": settings})
    second = runner.invoke(dashboards_group, ["apply"], obj={"settings": settings})
    wrong = runner.invoke(
        dashboards_group, ["apply"], obj={"settings": _settings(url, token="bad-secret-tok")}
    )

    assert first.exit_code == 0, first.output
    assert "created" in first.output and "alert rule: unknown-rate" in first.output
    assert second.exit_code == 0 and "nothing changed" in second.output
    assert wrong.exit_code == 1 and "SEAWATCH_DASHBOARDS__GRAFANA__TOKEN" in wrong.output
    for secret in (TOKEN, INFLUX_TOKEN, HOOK_SECRET, "bad-secret-tok"):
        assert secret not in first.output + second.output + wrong.output
    assert fake.violations == []


def test_a_broken_dashboard_stops_before_any_write(
    grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from seawatch.dashboards import catalog
    from seawatch.dashboards.checks import DashboardError

    fake, url = grafana
    broken = {**build_dashboards(_settings(url))[0], "schemaVersion": 1}
    monkeypatch.setattr(catalog, "build_dashboards", lambda settings: [broken])
    with pytest.raises(DashboardError, match="schemaVersion"):
        apply(_settings(url))
    assert fake.writes() == []
