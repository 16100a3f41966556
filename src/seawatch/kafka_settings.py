"""The ``kafka`` settings section: brokers, topics, consumer group and security."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from seawatch.settings_base import Section, readable_file, secret_from_file


class KafkaSettings(Section):
    """Where frames come from and where bad ones go."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    topics: list[str] | None = Field(
        None, min_length=1, description="default: the topic of every enabled task (frames.<task>)"
    )
    group_id: str = "seawatch"
    dlq_topic: str = "frames.dlq"
    client_id: str = "seawatch"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(64, ge=1, le=10_000)
    max_poll_interval_ms: int = Field(
        10_000, ge=1_000, description="short values make group re-joins on Tansu take seconds"
    )
    session_timeout_ms: int = Field(10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(2_000, ge=100)
    fetch_max_bytes: int = Field(64 << 20, ge=1 << 20)
    fetch_max_wait_ms: int = Field(
        50,
        ge=0,
        le=10_000,
        description="longest a fetch waits for data; brokers that hold a fetch for its whole "
        "wait (Tansu) add it to every frame's latency",
    )
    metadata_max_age_ms: int = Field(
        10_000,
        ge=1_000,
        description="how often the consumer refreshes topic metadata; a frame topic deleted and "
        "made again is noticed (by its new topic id) and read from its beginning within this",
    )
    max_message_bytes: int = Field(16 << 20, ge=1 << 16)
    create_topics: bool = Field(True, description="create missing topics at start")
    partitions: int = Field(4, ge=1, description="partitions for topics created at start")
    connect_timeout_ms: int = Field(
        30_000, ge=500, description="how long a client tries to bootstrap before giving up"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = Field(
        None, description="PEM bundle of the CAs to trust; default: the system's"
    )
    ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS), PEM")
    ssl_keyfile: Path | None = Field(None, description="the client certificate's key, PEM")
    ssl_check_hostname: bool = Field(True, description="match the broker's name to its cert")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password (instead of sasl_password)"
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                msg = f"{server!r} is not host:port (e.g. 127.0.0.1:9092)"
                raise ValueError(msg)
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _pem_readable(cls, value: Path | None) -> Path | None:
        return readable_file(value)

    @model_validator(mode="before")
    @classmethod
    def _password_file(cls, data: Any) -> Any:
        return secret_from_file(data, "sasl_password", "sasl_password_file", "kafka")

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        protocol = self.security_protocol
        uses_tls = protocol in ("SSL", "SASL_SSL")
        uses_sasl = protocol.startswith("SASL_")
        if uses_sasl:
            missing = [
                name
                for name, value in (
                    ("kafka.sasl_mechanism", self.sasl_mechanism),
                    ("kafka.sasl_username", self.sasl_username),
                    ("kafka.sasl_password (or kafka.sasl_password_file)", self.sasl_password),
                )
                if not value or (isinstance(value, SecretStr) and not value.get_secret_value())
            ]
            if missing:
                msg = (
                    f"security_protocol {protocol} authenticates with SASL but "
                    f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                    "set them (mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
                raise ValueError(msg)
        else:
            given = [
                name
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is not None
            ]
            if given:
                msg = (
                    f"kafka.{given[0]} is set but security_protocol is {protocol}, which sends "
                    "no credentials; set security_protocol to SASL_SSL (or SASL_PLAINTEXT), "
                    "or remove the SASL settings"
                )
                raise ValueError(msg)
        if not uses_tls:
            given = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n)]
            if given:
                msg = (
                    f"kafka.{given[0]} is set but security_protocol is {protocol}, which does "
                    "not use TLS; set security_protocol to SSL (or SASL_SSL), or remove it"
                )
                raise ValueError(msg)
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            msg = (
                "kafka.ssl_keyfile is set without kafka.ssl_certfile; give the client "
                "certificate too (or one PEM holding both as ssl_certfile)"
            )
            raise ValueError(msg)
        return self


__all__ = ["KafkaSettings"]
