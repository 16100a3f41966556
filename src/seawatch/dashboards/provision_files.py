"""``seawatch dashboards export DIR``: Grafana's file provisioning, for ships without access.

Writes, under ``DIR`` (copy it to ``/etc/grafana/provisioning/``)::

    datasources/seawatch.yaml        the InfluxDB datasource
    dashboards/seawatch.yaml         a file provider reading the JSON folder below
    dashboards/seawatch/*.json       the dashboards
    alerting/seawatch.yaml           the rule group and the contact point

The models are the ones ``dashboards apply`` sends (one source of truth); in the alerting
file every ``$`` of queries and labels is written ``$$`` (Grafana expands ``$NAME`` there
from its environment). Secrets are never written: the InfluxDB token becomes
``${SEAWATCH_INFLUX_TOKEN}`` and webhook credentials ``${SEAWATCH_WEBHOOK_<N>_CREDENTIALS}``,
which Grafana expands from its environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from seawatch.config import Settings
from seawatch.dashboards import alert_rules as ar
from seawatch.dashboards.datasource import datasource_model

#: Where Grafana sees the dashboards' JSON folder by default.
DEFAULT_DASHBOARDS_PATH = "/etc/grafana/provisioning/dashboards/seawatch"
DEFAULT_TOKEN_ENV = "SEAWATCH_INFLUX_TOKEN"
_NAME = "seawatch"


def webhook_env(index: int) -> str:
    """The environment variable holding webhook ``index``'s credentials in the export."""
    return f"SEAWATCH_WEBHOOK_{index}_CREDENTIALS"


def escape_dollars(value: Any) -> Any:
    """``value`` with every ``$`` in its strings doubled, so Grafana's environment expansion
    of provisioning files gives back ``$timeFilter`` and ``$C`` unchanged."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_dollars(v) for v in value]
    return value


def datasources_file(settings: Settings, *, token_env: str = DEFAULT_TOKEN_ENV) -> dict[str, Any]:
    """The datasource provisioning file (apiVersion 1)."""
    model = datasource_model(settings, token_value="${" + token_env + "}")
    model["orgId"] = 1
    model["editable"] = False
    return {
        "apiVersion": 1,
        "deleteDatasources": [],
        "datasources": [model],
    }


def dashboards_file(settings: Settings, *, path: str = DEFAULT_DASHBOARDS_PATH) -> dict[str, Any]:
    """The dashboard provider file: the JSON folder as Grafana sees it (``path``)."""
    g = settings.dashboards.grafana
    provider = {
        "name": _NAME,
        "orgId": 1,
        "folder": g.folder_title,
        "folderUid": g.folder_uid,
        "type": "file",
        "disableDeletion": False,
        "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": path, "foldersFromFilesStructure": False},
    }
    return {"apiVersion": 1, "providers": [provider]}


def alerting_file(settings: Settings) -> dict[str, Any]:
    """The rule group and the contact point in Grafana's alerting file format."""
    g = settings.dashboards.grafana
    rules = []
    for rule in ar.alert_rules(settings):
        item = {k: v for k, v in rule.items() if k not in ("folderUID", "ruleGroup", "orgID")}
        # Grafana expands $NAME in queries and labels of these files; $$ is a literal $.
        item["data"] = escape_dollars(item["data"])
        item["labels"] = escape_dollars(item["labels"])
        rules.append(item)
    out: dict[str, Any] = {"apiVersion": 1}
    if rules:
        out["groups"] = [
            {
                "orgId": 1,
                "name": ar.RULE_GROUP,
                "folder": g.folder_title,
                "interval": settings.dashboards.alert_interval,
                "rules": rules,
            }
        ]
    receivers = []
    seen: set[str] = set()
    hooks = settings.alerts.webhooks if settings.alerts.enabled else []
    for index, hook in enumerate(hooks):
        if hook.url in seen:
            continue
        seen.add(hook.url)
        receiver = ar.webhook_receiver(hook, credentials="${" + webhook_env(index) + "}")
        receivers.append({k: v for k, v in receiver.items() if k != "name"})
    if receivers:
        out["contactPoints"] = [{"orgId": 1, "name": ar.CONTACT_POINT, "receivers": receivers}]
    return out


def _dump(path: Path, data: dict[str, Any], header: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(f"# {header}\n{text}")
    return path


def export(
    settings: Settings,
    out_dir: Path,
    *,
    dashboards_path: str = DEFAULT_DASHBOARDS_PATH,
    token_env: str = DEFAULT_TOKEN_ENV,
) -> list[Path]:
    """Write the provisioning files under ``out_dir``; the paths written."""
    from seawatch.dashboards.provision import checked_dashboards

    models = checked_dashboards(settings)  # every check passes before anything is written
    out_dir = Path(out_dir)
    written = [
        _dump(
            out_dir / "datasources" / f"{_NAME}.yaml",
            datasources_file(settings, token_env=token_env),
            f"seawatch InfluxDB datasource; the token comes from ${token_env}",
        ),
        _dump(
            out_dir / "dashboards" / f"{_NAME}.yaml",
            dashboards_file(settings, path=dashboards_path),
            f"seawatch dashboards: Grafana reads the JSON files from {dashboards_path}",
        ),
    ]
    json_dir = out_dir / "dashboards" / _NAME
    json_dir.mkdir(parents=True, exist_ok=True)
    for model in models:
        wanted = {k: v for k, v in model.items() if k != "id"}
        path = json_dir / f"{model['uid']}.json"
        path.write_text(json.dumps(wanted, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    envs = ", ".join(
        f"${webhook_env(i)}"
        for i, hook in enumerate(settings.alerts.webhooks)
        if any(k.lower() == "authorization" for k in hook.headers)
    )
    note = f"; webhook credentials from {envs}" if envs else ""
    written.append(
        _dump(
            out_dir / "alerting" / f"{_NAME}.yaml",
            alerting_file(settings),
            f"seawatch alert rules mirroring the daemon's, and its contact point{note}",
        )
    )
    return written


__all__ = [
    "DEFAULT_DASHBOARDS_PATH",
    "DEFAULT_TOKEN_ENV",
    "alerting_file",
    "dashboards_file",
    "datasources_file",
    "escape_dollars",
    "export",
    "webhook_env",
]
