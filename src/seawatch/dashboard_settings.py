"""Settings of the dashboards part: the Grafana that ``seawatch dashboards apply`` provisions,
the datasource it points at, and the HTML report's links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from seawatch.settings_base import Section, secret_from_file
from seawatch.storage_settings import InfluxSettings


class GrafanaSettings(Section):
    """The Grafana that ``seawatch dashboards apply`` provisions (through grafana-client)."""

    url: str | None = Field(None, description="e.g. http://grafana:3000; unset: apply refuses")
    token: SecretStr = Field(
        SecretStr(""), description="service-account token (SEAWATCH_DASHBOARDS__GRAFANA__TOKEN)"
    )
    token_file: Path | None = Field(
        None, description="file holding the service-account token (instead of token)"
    )
    folder_uid: str = Field("seawatch", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    folder_title: str = "seawatch"
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return InfluxSettings._http(value)

    @model_validator(mode="before")
    @classmethod
    def _token_file(cls, data: Any) -> Any:
        return secret_from_file(data, "token", "token_file", "dashboards.grafana")


class DashboardSettings(Section):
    """Grafana dashboards, datasource and alert rules as code, and the HTML report."""

    grafana: GrafanaSettings = GrafanaSettings()
    datasource_uid: str = Field("seawatch-influxdb", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    datasource_name: str = "seawatch InfluxDB"
    influx_url: str | None = Field(
        None, description="InfluxDB as Grafana reaches it; default: storage.influx.url"
    )
    database: str = Field(
        "seawatch", description="InfluxQL database (1.x), or the DBRP mapping of the bucket (2.x)"
    )
    evidence_url: str = Field(
        "", description="base URL where the evidence directory is served (thumbnail links)"
    )
    refresh: str = Field("30s", pattern=r"^[0-9]+[smhd]$")
    alert_interval: str = Field("1m", pattern=r"^[0-9]+[smh]$")

    @field_validator("influx_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return InfluxSettings._http(value)
