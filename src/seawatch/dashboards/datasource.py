"""The Grafana datasource the dashboards and alert rules query: InfluxDB in InfluxQL mode.

InfluxQL is the one language InfluxDB 1.x, 2.x (through a DBRP mapping of the bucket) and
3.x all answer. With a token (2.x/3.x) Grafana sends ``Authorization: Token ...`` as a
custom header; the token goes to ``secureJsonData``, which Grafana stores encrypted and
never returns. Nothing here logs or prints the model: it may hold the secret.
"""

from __future__ import annotations

from typing import Any

from seawatch.config import Settings
from seawatch.contracts.errors import ConfigError

#: The Grafana plugin id of the InfluxDB datasource.
DATASOURCE_TYPE = "influxdb"
#: The custom header slot that carries the InfluxDB token.
TOKEN_HEADER = "httpHeaderValue1"


def influx_url(settings: Settings) -> str:
    """InfluxDB's URL as Grafana reaches it: ``dashboards.influx_url``, else
    ``storage.influx.url``; :class:`ConfigError` when neither is set."""
    url = settings.dashboards.influx_url or settings.storage.influx.url
    if not url:
        msg = (
            "no InfluxDB URL for the Grafana datasource; set dashboards.influx_url "
            "(SEAWATCH_DASHBOARDS__INFLUX_URL) or storage.influx.url"
        )
        raise ConfigError(msg)
    return url


def has_token(settings: Settings) -> bool:
    """Whether the datasource authenticates with an InfluxDB token."""
    return bool(settings.storage.influx.token.get_secret_value())


def datasource_model(settings: Settings, *, token_value: str | None = None) -> dict[str, Any]:
    """The datasource as Grafana's API and file provisioning take it.

    ``token_value`` replaces the token in ``secureJsonData`` (file export passes an
    environment reference such as ``${SEAWATCH_INFLUX_TOKEN}``); by default the real token
    from ``storage.influx.token`` is used. Without a token there is no auth header.
    """
    d = settings.dashboards
    model: dict[str, Any] = {
        "uid": d.datasource_uid,
        "name": d.datasource_name,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": influx_url(settings),
        "isDefault": False,
        "jsonData": {
            "version": "InfluxQL",
            "dbName": d.database,
            "httpMode": "POST",
            "timeInterval": "10s",
        },
    }
    if has_token(settings):
        secret = token_value or settings.storage.influx.token.get_secret_value()
        model["jsonData"]["httpHeaderName1"] = "Authorization"
        model["secureJsonData"] = {TOKEN_HEADER: f"Token {secret}"}
    return model


__all__ = ["DATASOURCE_TYPE", "TOKEN_HEADER", "datasource_model", "has_token", "influx_url"]
