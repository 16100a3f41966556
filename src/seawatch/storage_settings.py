"""The ``storage`` settings section: the local store, its crops, InfluxDB and the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from seawatch.settings_base import Section, secret_from_file


class CropSettings(Section):
    """Crops kept for the review station: a content-addressed SQLite file beside the store.

    Retention drops the oldest crops past ``max_age_days`` or over ``max_bytes``; crops of
    objects a person has reviewed are always kept.
    """

    enabled: bool = True
    path: Path | None = Field(None, description="default: <store>-crops.db beside the store")
    max_bytes: int = Field(
        20 * 1024**3,
        ge=1024**2,
        description="crop bytes kept at most (default 20 GiB: about two million crops of "
        "~10 KB, a month of a busy imager)",
    )
    max_age_days: float = Field(
        365.0, gt=0, description="crops older than this are dropped (unless reviewed)"
    )


class LocalStoreSettings(Section):
    """The embedded store: a SQLite file with every frame and object record."""

    enabled: bool = True
    path: Path = Path("seawatch-data/seawatch.db")
    evidence_dir: Path | None = Field(
        None, description="flagged otoliths' thumbnails and heat maps; default: <store>-evidence/"
    )
    fish_gallery: Path | None = Field(
        None, description="the daemon's working fish gallery; default: <store>-fish-gallery.npz"
    )
    crops: CropSettings = Field(default_factory=CropSettings)

    @property
    def keeps_crops(self) -> bool:
        """Whether heads encode crops for the review station."""
        return self.enabled and self.crops.enabled

    @property
    def crops_path(self) -> Path:
        """The crop store's file."""
        return self.crops.path or self.path.with_name(f"{self.path.stem}-crops.db")

    @property
    def evidence_root(self) -> Path:
        """Where flagged samples' thumbnails and heat maps are written."""
        return self.evidence_dir or self.path.with_name(f"{self.path.stem}-evidence")

    @property
    def fish_gallery_path(self) -> Path:
        """The working copy of the fish gallery (seeded from the model's gallery)."""
        return self.fish_gallery or self.path.with_name(f"{self.path.stem}-fish-gallery.npz")


class InfluxSettings(Section):
    """InfluxDB (2.x/3.x, or 1.8+ with a v2 API) through influxdb-client; off when url is unset."""

    url: str | None = None
    org: str = "seawatch"
    bucket: str = "seawatch"
    token: SecretStr = SecretStr("")
    token_file: Path | None = Field(
        None, description="file holding the token (instead of token); read at start"
    )
    batch_size: int = Field(5000, ge=1)
    timeout_ms: int = Field(10_000, ge=100)
    max_retries: int = Field(5, ge=0)
    retry_backoff_s: float = Field(0.5, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            msg = f"{value!r} must start with http:// or https://"
            raise ValueError(msg)
        return value

    @model_validator(mode="before")
    @classmethod
    def _token_file(cls, data: Any) -> Any:
        return secret_from_file(data, "token", "token_file", "storage.influx")


class OutboxSettings(Section):
    """The durable outbox between the pipeline and InfluxDB (used whenever influx.url is set).

    Records' line protocol is committed to this SQLite (WAL) file before offsets are; a
    background drainer forwards it to InfluxDB and deletes it only once acknowledged.
    """

    path: Path | None = Field(
        None, description="the outbox file; default: <store>-outbox.db beside the local store"
    )
    max_lines: int = Field(
        2_000_000, ge=1, description="backlog at which consumption pauses (never drops)"
    )
    max_backoff_s: float = Field(30.0, gt=0, description="longest wait between write retries")
    shutdown_drain_s: float = Field(
        4.0,
        ge=0,
        description="at shutdown, how long to keep draining; the rest stays on disk (SIGTERM "
        "exits within 10 s with the default)",
    )


class StorageSettings(Section):
    """Sinks the records go to; offsets are committed only after all have flushed."""

    local: LocalStoreSettings = LocalStoreSettings()
    influx: InfluxSettings = InfluxSettings()
    outbox: OutboxSettings = OutboxSettings()
    metrics_interval_s: float = Field(
        10.0, gt=0, description="how often the daemon writes its own `pipeline` point"
    )

    @property
    def outbox_path(self) -> Path:
        """The outbox file: ``outbox.path``, or ``<store>-outbox.db`` beside the local store."""
        local = self.local.path
        return self.outbox.path or local.with_name(f"{local.stem}-outbox.db")


__all__ = [
    "CropSettings",
    "InfluxSettings",
    "LocalStoreSettings",
    "OutboxSettings",
    "StorageSettings",
]
