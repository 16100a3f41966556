"""The alert rules as configured: one typed model per kind, told apart by ``kind``.

Every rule has a ``name`` (unique), a ``severity`` and a ``cooldown_s``: after a rule fires
for a subject (an instrument, a taxon at an instrument, a specimen, a fish), it stays quiet
for that subject for ``cooldown_s`` seconds of capture time (wall time for
``instrument_silent``), so a lasting condition raises one alert, not one per frame.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

Severity = Literal["info", "warning", "critical"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    severity: Severity = "warning"
    cooldown_s: float = Field(600.0, ge=0)


class OtolithAnomalyRule(_Rule):
    """A specimen whose anomaly score is over the model's threshold (one alert per specimen)."""

    kind: Literal["otolith_anomaly"]


class PlanktonBloomRule(_Rule):
    """A taxon's concentration in the current window over ``factor`` x the median of its
    previous ``baseline_windows`` windows, with at least ``min_count`` objects."""

    kind: Literal["plankton_bloom"]
    window_s: float = Field(600.0, gt=0)
    baseline_windows: int = Field(12, ge=1)
    min_baseline_windows: int = Field(3, ge=1)
    factor: float = Field(3.0, gt=1)
    min_count: int = Field(20, ge=1)
    taxa: list[str] | None = Field(None, description="only these taxa; default: all but unknown")

    @model_validator(mode="after")
    def _baseline(self) -> PlanktonBloomRule:
        if self.min_baseline_windows > self.baseline_windows:
            msg = (
                f"min_baseline_windows ({self.min_baseline_windows}) cannot exceed "
                f"baseline_windows ({self.baseline_windows})"
            )
            raise ValueError(msg)
        return self


class UnknownRateRule(_Rule):
    """The share of ``unknown`` (low-confidence) objects over ``max_share`` in a window."""

    kind: Literal["unknown_rate"]
    window_s: float = Field(300.0, gt=0)
    max_share: float = Field(0.3, gt=0, lt=1)
    min_objects: int = Field(50, ge=1)


class NewIndividualRule(_Rule):
    """A fish sighting that enrolled a new (provisional) individual."""

    kind: Literal["new_individual"]
    cooldown_s: float = Field(0.0, ge=0)


class InstrumentSilentRule(_Rule):
    """No frame from an instrument (seen before) for ``silent_s`` seconds of wall time.

    Only the instruments of the partitions this worker owns are judged. An instrument whose
    state came from a snapshot (after a restart, or from the worker that owned its partition
    before) is not judged for ``grace_s`` after the partition came: its frames may be waiting
    in the partition."""

    kind: Literal["instrument_silent"]
    silent_s: float = Field(300.0, gt=0)
    grace_s: float = Field(
        60.0, ge=0, description="after a partition comes, wait this long before judging it"
    )


class FrameQualityRule(_Rule):
    """The share of bad full frames (empty, blurred or saturated) over ``max_share`` among
    the last ``window_frames`` full frames of an instrument (at least ``min_frames``)."""

    kind: Literal["frame_quality"]
    window_frames: int = Field(50, ge=1)
    min_frames: int = Field(20, ge=1)
    max_share: float = Field(0.2, gt=0, lt=1)
    min_sharpness: float = Field(
        5.0, ge=0, description="variance of the Laplacian (half resolution) below: blurred"
    )
    max_saturated_share: float = Field(
        0.05, gt=0, lt=1, description="share of pixels at 250+ above: saturated"
    )


Rule = Annotated[
    OtolithAnomalyRule
    | PlanktonBloomRule
    | UnknownRateRule
    | NewIndividualRule
    | InstrumentSilentRule
    | FrameQualityRule,
    Field(discriminator="kind"),
]

#: The rules of an unconfigured daemon: every kind, with its defaults.
DEFAULT_RULES: tuple[dict, ...] = (
    {"name": "otolith-anomaly", "kind": "otolith_anomaly", "severity": "warning"},
    {"name": "plankton-bloom", "kind": "plankton_bloom", "severity": "warning"},
    {"name": "unknown-rate", "kind": "unknown_rate", "severity": "info"},
    {"name": "new-fish", "kind": "new_individual", "severity": "info"},
    {"name": "instrument-silent", "kind": "instrument_silent", "severity": "critical"},
    {"name": "frame-quality", "kind": "frame_quality", "severity": "warning"},
)


class WebhookSettings(BaseModel):
    """One HTTP endpoint that receives every alert as a JSON POST.

    Checked at load time: http or https with a host; no ``user:password@`` in the URL
    (credentials go in ``headers``, which are masked in logs, while URLs are logged);
    plain ``http://`` only to a loopback host unless ``allow_insecure``; never a link-local
    address (169.254.0.0/16, fe80::/10: cloud metadata services live there); header names
    are HTTP tokens and no header carries CR or LF (which would smuggle extra headers). A
    host *name* that resolves to a refused address is not caught here (no DNS at load time).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Before ``url``: fields are validated in this order and the URL check reads it.
    allow_insecure: bool = Field(
        False, description="allow plain http:// to a host other than loopback"
    )
    url: str
    timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # may hold secrets

    @field_validator("url")
    @classmethod
    def _safe_url(cls, url: str, info: ValidationInfo) -> str:
        return _check_webhook_url(url, allow_insecure=bool(info.data.get("allow_insecure")))

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                msg = (
                    f"{name!r} is not a valid HTTP header name "
                    "(letters, digits and !#$%&'*+-.^_`|~ only)"
                )
                raise ValueError(msg)
            if any(c in value for c in "\r\n\0"):
                msg = (
                    f"the value of {name!r} holds a line break or NUL (header injection); remove it"
                )
                raise ValueError(msg)
        return headers


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "fd00:ec2::254"}


def _check_webhook_url(url: str, *, allow_insecure: bool) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}); e.g. https://ops.example/hook") from None
    if parts.scheme not in ("http", "https"):
        msg = f"scheme {parts.scheme or '(none)'!r} is not allowed; use https:// (or http://)"
        raise ValueError(msg)
    if not host:
        raise ValueError("has no host; e.g. https://ops.example/hooks/seawatch")
    if parts.username is not None or parts.password is not None:
        msg = (
            "carries credentials (user:password@) and URLs are logged; remove them and put "
            "them in headers, e.g. headers: {Authorization: Basic ...}"
        )
        raise ValueError(msg)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if host.lower().rstrip(".") in _METADATA_HOSTS or (
        address is not None and any(address in net for net in _LINK_LOCAL)
    ):
        msg = (
            f"host {host} is link-local or a cloud metadata service (169.254.0.0/16, "
            "fe80::/10), which a webhook must never reach; use the receiver's own address"
        )
        raise ValueError(msg)
    loopback = host.lower() == "localhost" or (address is not None and address.is_loopback)
    if parts.scheme == "http" and not loopback and not allow_insecure:
        msg = (
            f"is plain http:// to {host}, so alerts and headers cross the network "
            "unencrypted; use https://, or set allow_insecure: true for this webhook"
        )
        raise ValueError(msg)
    return url


__all__ = [
    "DEFAULT_RULES",
    "FrameQualityRule",
    "InstrumentSilentRule",
    "NewIndividualRule",
    "OtolithAnomalyRule",
    "PlanktonBloomRule",
    "Rule",
    "Severity",
    "UnknownRateRule",
    "WebhookSettings",
]
