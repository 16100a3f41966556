"""``seawatch dashboards export DIR``: Grafana's file provisioning, same models as the API path,
no secret written, and ``$`` escaped so Grafana's environment expansion gives the queries
back unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from seawatch.config import Settings, load_settings
from seawatch.dashboards import alert_rules as ar
from seawatch.dashboards.catalog import build_dashboards
from seawatch.dashboards.commands import dashboards_group
from seawatch.dashboards.datasource import datasource_model
from seawatch.dashboards.provision_files import DEFAULT_DASHBOARDS_PATH, export

INFLUX_TOKEN = "influx-file-secret"
HOOK_SECRET = "hook-file-secret"
HOOKS = [
    {"url": "https://ops.example/hook", "headers": {"Authorization": f"Bearer {HOOK_SECRET}"}},
    {"url": "http://plain.example/hook", "allow_insecure": True},
]


def _settings(**overrides: Any) -> Settings:
    values = {
        "storage__influx__url": "http://influx:8086",
        "storage__influx__token": INFLUX_TOKEN,
        "alerts__webhooks": HOOKS,
        "dashboards__alert_interval": "2m",
    }
    return load_settings(**{**values, **overrides})


def grafana_expand(value: Any, env: dict[str, str]) -> Any:
    """Grafana's expansion of provisioning values (Go ``os.Expand``, ``$$`` a literal ``$``)."""
    if isinstance(value, dict):
        return {k: grafana_expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [grafana_expand(v, env) for v in value]
    if not isinstance(value, str):
        return value
    parts = value.split("$$")
    pattern = r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)"
    expanded = [re.sub(pattern, lambda m: env.get(m[1] or m[2], ""), p) for p in parts]
    return "$".join(expanded)


def test_export_writes_grafanas_provisioning_layout(tmp_path: Path) -> None:
    settings = _settings()
    written = export(settings, tmp_path)

    relative = sorted(str(p.relative_to(tmp_path)) for p in written)
    uids = [d["uid"] for d in build_dashboards(settings)]
    assert relative == sorted(
        ["datasources/seawatch.yaml", "dashboards/seawatch.yaml", "alerting/seawatch.yaml"]
        + [f"dashboards/seawatch/{uid}.json" for uid in uids]
    )
    everything = "".join(p.read_text() for p in written)
    assert INFLUX_TOKEN not in everything and HOOK_SECRET not in everything


def test_datasource_file_references_the_token_env(tmp_path: Path) -> None:
    settings = _settings()
    export(settings, tmp_path, token_env="GF_INFLUX_TOKEN")
    data = yaml.safe_load((tmp_path / "datasources/seawatch.yaml").read_text())

    assert data["apiVersion"] == 1
    (ds,) = data["datasources"]
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token ${GF_INFLUX_TOKEN}"}
    expanded = grafana_expand(ds, {"GF_INFLUX_TOKEN": INFLUX_TOKEN})
    api = datasource_model(settings)
    assert {k: expanded[k] for k in api} == api  # the API model, once Grafana expands it


def test_dashboard_provider_and_json(tmp_path: Path) -> None:
    settings = _settings()
    export(settings, tmp_path, dashboards_path="/var/lib/grafana/seawatch")
    provider = yaml.safe_load((tmp_path / "dashboards/seawatch.yaml").read_text())

    (p,) = provider["providers"]
    assert provider["apiVersion"] == 1 and p["type"] == "file"
    assert p["options"]["path"] == "/var/lib/grafana/seawatch"
    assert p["folderUid"] == "seawatch" and p["folder"] == "seawatch"
    for model in build_dashboards(settings):
        saved = json.loads((tmp_path / f"dashboards/seawatch/{model['uid']}.json").read_text())
        assert saved == {k: v for k, v in model.items() if k != "id"}


def test_alerting_file_is_the_api_models_escaped(tmp_path: Path) -> None:
    settings = _settings()
    export(settings, tmp_path)
    data = yaml.safe_load((tmp_path / "alerting/seawatch.yaml").read_text())

    (group,) = data["groups"]
    assert (group["name"], group["folder"], group["interval"]) == ("seawatch", "seawatch", "2m")
    models = [q["model"] for r in group["rules"] for q in r["data"]]
    queries = [m["query"] for m in models if "query" in m]
    assert queries and all("$$timeFilter" in q for q in queries)
    api = ar.alert_rules(settings)
    assert [r["uid"] for r in group["rules"]] == [r["uid"] for r in api]
    for in_file, wanted in zip(group["rules"], api, strict=True):
        expanded = grafana_expand(in_file, {})
        expanded["annotations"] = in_file["annotations"]  # not expanded by Grafana
        assert expanded == {
            k: v for k, v in wanted.items() if k not in ("folderUID", "ruleGroup", "orgID")
        }

    (contact,) = data["contactPoints"]
    assert contact["name"] == ar.CONTACT_POINT
    first, second = contact["receivers"]
    assert first["settings"]["authorization_credentials"] == "${SEAWATCH_WEBHOOK_0_CREDENTIALS}"
    assert "authorization_credentials" not in second["settings"]
    assert [r["uid"] for r in contact["receivers"]] == [
        p["uid"] for p in ar.contact_points(settings)
    ]


def test_no_webhooks_no_contact_point(tmp_path: Path) -> None:
    export(_settings(alerts__webhooks=[]), tmp_path)
    data = yaml.safe_load((tmp_path / "alerting/seawatch.yaml").read_text())
    assert "contactPoints" not in data
    assert all("notification_settings" not in r for r in data["groups"][0]["rules"])


def test_cli_export(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        dashboards_group, ["export", str(tmp_path / "out")], obj={"settings": _settings()}
    )
    assert result.exit_code == 0, result.output
    assert "alerting/seawatch.yaml" in result.output
    provider = yaml.safe_load((tmp_path / "out/dashboards/seawatch.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == DEFAULT_DASHBOARDS_PATH
    assert INFLUX_TOKEN not in result.output and HOOK_SECRET not in result.output
