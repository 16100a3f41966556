"""The review station's settings (``review:``): where it listens, how it keeps accounts and
sessions, and the taxonomy reviewers choose from."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

TAXON = re.compile(r"^[A-Za-z][A-Za-z0-9 _.-]{0,63}$")  # a taxon name a reviewer may give
GROUP = re.compile(r"^[A-Za-z][A-Za-z0-9 _.-]{0,63}(>[A-Za-z][A-Za-z0-9 _.-]{0,63}){0,7}$")
DEFAULT_TAXA: dict[str, list[str]] = {  # the committed model's classes, and a few more
    "living>Metazoa": ["appendicularian", "chaetognath", "copepod", "medusa", "pteropod"],
    "living>Bacillariophyta": ["diatom_chain", "centric_diatom"],
    "living>Dinoflagellata": ["noctiluca", "dinoflagellate"],
    "living>Rhizaria": ["radiolarian", "foraminifera"],
    "living>Ciliophora": ["ciliate"],
    "not-living": ["bubble", "detritus", "fiber", "marine_snow"],
    "other": ["unknown", "multiple", "badfocus"],
}
ANOMALY_TYPES = ("vaterite", "broken", "crack", "debris", "blur", "other")


class ReviewSettings(BaseModel):
    """``review:``: the web app people use to look at and correct what the models saw."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 on a ship's LAN")
    port: int = Field(8470, ge=1, le=65535)
    accounts_path: Path | None = Field(
        None, description="accounts and sessions (SQLite); default: <store>-review.db"
    )
    secure_cookies: bool = Field(
        False,
        description="mark the session cookie Secure (set true behind HTTPS; a plain-HTTP "
        "ship LAN needs false or browsers drop the cookie)",
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="a login lasts this long")
    login_attempts: int = Field(
        5, ge=1, le=100, description="failed logins per account and address per window"
    )
    login_window_s: float = Field(300.0, gt=0, description="the failed-login window")
    page_size: int = Field(200, ge=10, le=1000, description="thumbnails per page")
    taxa: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_TAXA.items()},
        description="the taxonomy: group path ('a>b') -> taxa; admins add more in the app",
    )
    progress_interval_s: float = Field(
        300.0,
        ge=5,
        description="how often the `review` points (validated share per cruise and taxon) go "
        "to InfluxDB, when storage.influx.url is set",
    )
    publish_topic: str | None = Field(
        "reviews",
        description="Kafka topic every decision is published to (keyed by subject); "
        "null: decisions stay in the store",
    )

    @field_validator("taxa")
    @classmethod
    def _taxon_names(cls, taxa: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [t for names in taxa.values() for t in names if not TAXON.match(t)]
        if bad:
            msg = (
                f"taxon names {bad} must start with a letter and hold letters, digits, space, _ . -"
            )
            raise ValueError(msg)
        return taxa


__all__ = ["ANOMALY_TYPES", "DEFAULT_TAXA", "GROUP", "TAXON", "ReviewSettings"]
