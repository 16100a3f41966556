"""Typed settings: one model with a section per part, from a YAML file and the environment.

Precedence, highest first: environment (``SEAWATCH_<SECTION>__<FIELD>``, e.g.
``SEAWATCH_KAFKA__BOOTSTRAP_SERVERS``), the YAML file given with ``--config``, the
defaults below. :func:`load_settings` validates everything before anything connects and
raises :class:`~seawatch.contracts.errors.ConfigError` naming each bad field and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from seawatch.alert_settings import DEFAULT_RULES, Rule, WebhookSettings
from seawatch.contracts.errors import ConfigError
from seawatch.review_settings import ReviewSettings
from seawatch.secrets import read_secret_file, redact_url
from seawatch.task_settings import TASK_NAME, TaskSettings, merge_tasks

ENV_PREFIX = "SEAWATCH_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_from_file(data: Any, field: str, file_field: str, where: str) -> Any:
    """Before validation: read ``file_field`` (a path) into ``field`` (a secret).

    Both set is refused (which one wins would be a guess), unless they agree, as they do
    when settings already loaded are validated again.
    """
    if not isinstance(data, dict) or data.get(file_field) in (None, ""):
        return data
    secret = read_secret_file(Path(data[file_field]), f"{where}.{file_field}")
    given = data.get(field)
    if isinstance(given, SecretStr):
        given = given.get_secret_value()
    if given not in (None, "") and given != secret:
        msg = (
            f"{where}.{field} and {where}.{file_field} are both set; keep one "
            f"(unset {ENV_PREFIX}{where.replace('.', '__').upper()}__{field.upper()} "
            "or remove it from the YAML file)"
        )
        raise ValueError(msg)
    return {**data, field: secret}


def _readable_file(value: Path | None) -> Path | None:
    if value is None:
        return None
    if not value.is_file():
        raise ValueError(f"{value} does not exist or is not a file; give the PEM file's path")
    if not os.access(value, os.R_OK):
        raise ValueError(f"{value} is not readable by this user; fix its owner or mode")
    return value


class KafkaSettings(_Section):
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
        return _readable_file(value)

    @model_validator(mode="before")
    @classmethod
    def _password_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "sasl_password", "sasl_password_file", "kafka")

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


class SegmentationSettings(_Section):
    """How full frames are cut into objects."""

    method: Literal["threshold", "model"] = Field(
        "threshold",
        description="threshold: flat-field correction and a global (Otsu) threshold; model: "
        "the segmentation network of model_dir (touching objects split, marine snow whole), "
        "run on the inference thread",
    )
    model_dir: Path | None = Field(
        Path("models/segmentation"),
        description="segmentation artifact (seawatch train segmentation), for method: model",
    )
    review_below: float = Field(
        0.6,
        ge=0,
        le=1,
        description="method model: a frame whose mean predicted IoU is under this puts its "
        "objects first in the review station's most-likely-wrong queue",
    )
    windows: bool = Field(
        True,
        description="method model: run the network only on windows around what a permissive "
        "proposal finds in the frame (faint signal included), not on the empty water; "
        "false: on the whole frame",
    )
    polarity: Literal["auto", "dark-on-light", "light-on-dark"] = "auto"
    min_esd_px: float = Field(6.0, gt=0)
    min_esd_um: float | None = Field(None, gt=0, description="used when pixel-size-um is known")
    threshold: Literal["otsu"] | float = "otsu"
    background_kernel: int = Field(101, ge=3)
    pad_px: int = Field(4, ge=0)
    max_objects: int = Field(5000, ge=1)


class IngestSettings(_Section):
    """Decoding limits, claim-check roots and segmentation."""

    max_bytes: int = Field(32 << 20, ge=1024)
    max_pixels: int = Field(50_000_000, ge=1)
    max_side: int = Field(30_000, ge=16)
    max_decoded_bytes: int = Field(
        256 << 20, ge=1 << 20, description="decoded arrays of one frame (depth x channels)"
    )
    claim_check_roots: list[Path] = Field(default_factory=list)
    decode_threads: int = Field(1, ge=1, le=64)
    opencv_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="OpenCV's own worker threads (process-wide) for resize, morphology and "
        "the like; 1: none beyond the calling thread, 0: OpenCV's default (one per core), "
        "whose pool competes with the inference thread for the cores",
    )
    segmentation: SegmentationSettings = SegmentationSettings()


class InferenceSettings(_Section):
    """Which model runs where, and how frames are batched for it."""

    backend: Literal["auto", "tensorrt", "onnxruntime-gpu", "torch-cuda", "onnxruntime"] = Field(
        "auto",
        description="auto: the best available of TensorRT, ONNX Runtime GPU, torch CUDA, "
        "ONNX Runtime CPU (the choice and why the others were skipped are logged)",
    )
    max_batch: int = Field(
        64, ge=1, le=4096, description="model inputs per inference call (tasks may set their own)"
    )
    max_wait_ms: int = Field(20, ge=0, le=10_000, description="wait to fill a poll batch")
    swap_check_s: float = Field(
        2.0, gt=0, le=3600, description="how often the model stores are checked for a promotion"
    )
    threads: int = Field(1, ge=1, le=256, description="intra-op threads of the backend")
    blas_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="numpy's BLAS threads (gallery matching and other small products); more "
        "than 1 only spins against the model's threads",
    )
    max_batches_in_flight: int = Field(
        8,
        ge=0,
        le=64,
        description="poll batches prepared ahead of the inference thread; 0: no inference "
        "thread, the loop infers each batch itself (one thread per worker, for --workers N "
        "on N cores)",
    )


class CropSettings(_Section):
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


class LocalStoreSettings(_Section):
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


class InfluxSettings(_Section):
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
        return _secret_from_file(data, "token", "token_file", "storage.influx")


class OutboxSettings(_Section):
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


class StorageSettings(_Section):
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


class AlertSettings(_Section):
    """The alert rules and where alerts go (InfluxDB ``alerts``, a Kafka topic, webhooks)."""

    enabled: bool = True
    topic: str | None = Field(
        "alerts", description="Kafka topic for alert JSON, keyed by alert id; null: none"
    )
    state_topic: str | None = Field(
        "alerts.state",
        description="compacted Kafka topic of the alert state per partition, restored after a "
        "restart or rebalance; null: state in memory only",
    )
    state_interval_s: float = Field(
        5.0,
        ge=0,
        description="the alert state is written at most this often, and offsets are "
        "committed with it (a crash replays at most this much); 0: every batch",
    )
    rules: list[Rule] = Field(default_factory=lambda: [_rule(r) for r in DEFAULT_RULES])
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    tick_s: float = Field(1.0, gt=0, description="how often time-based rules are checked")

    @model_validator(mode="after")
    def _distinct_topics(self) -> AlertSettings:
        if self.state_topic is not None and self.state_topic == self.topic:
            msg = (
                f"state_topic and topic are both {self.topic!r}; the state needs its own "
                "topic, e.g. state_topic: alerts.state"
            )
            raise ValueError(msg)
        return self

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[Rule]) -> list[Rule]:
        names = [r.name for r in rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            msg = f"rule names must be unique; repeated: {', '.join(twice)}"
            raise ValueError(msg)
        return rules


class GrafanaSettings(_Section):
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
        return _secret_from_file(data, "token", "token_file", "dashboards.grafana")


class DashboardSettings(_Section):
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


def _rule(values: dict) -> Rule:
    return TypeAdapter(Rule).validate_python(values)


class HttpSettings(_Section):
    """The daemon's HTTP endpoints: ``/healthz`` (ready: broker and stores reachable),
    ``/livez`` (the loop is turning) and ``/metrics`` (Prometheus text format).

    Under ``run --workers N`` worker ``i`` listens on ``port + i``.
    """

    enabled: bool = Field(True, description="serve /healthz, /livez and /metrics")
    host: str = Field(
        "127.0.0.1", description="address to listen on; 0.0.0.0 in a container or pod"
    )
    port: int = Field(9464, ge=1, le=65535, description="port of worker 0 (worker i: port + i)")
    stall_s: float = Field(
        60.0,
        gt=0,
        description="/livez fails (and the systemd watchdog stops being fed) when the "
        "pipeline loop has not turned for this long",
    )


class Settings(BaseSettings):
    """All of seawatch's settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    ingest: IngestSettings = IngestSettings()
    inference: InferenceSettings = InferenceSettings()
    tasks: dict[str, TaskSettings] = Field(
        default_factory=lambda: merge_tasks({}),
        description="the served tasks by name (plankton, otolith, fish, or a plug-in's)",
    )
    storage: StorageSettings = StorageSettings()
    alerts: AlertSettings = AlertSettings()
    dashboards: DashboardSettings = DashboardSettings()
    http: HttpSettings = HttpSettings()
    review: ReviewSettings = ReviewSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="the daemon's log level (one logfmt line per event, to stderr)"
    )

    @model_validator(mode="before")
    @classmethod
    def _tasks_over_defaults(cls, data: Any) -> Any:
        """Lay the given tasks over the built-in ones (see :mod:`seawatch.task_settings`)."""
        if isinstance(data, dict) and "tasks" in data:
            data = {**data, "tasks": merge_tasks(data["tasks"])}
        return data

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, tasks: dict[str, TaskSettings]) -> dict[str, TaskSettings]:
        bad = [name for name in tasks if not re.fullmatch(TASK_NAME, name)]
        if bad:
            msg = f"task names {bad} must be lower case letters, digits and _ (as {TASK_NAME})"
            raise ValueError(msg)
        return tasks

    @model_validator(mode="after")
    def _topics_from_tasks(self) -> Settings:
        """Without ``kafka.topics``, consume the topic of every enabled task."""
        if self.kafka.topics is None:
            topics = [t.topic_for(name) for name, t in self.tasks.items() if t.enabled]
            object.__setattr__(self, "kafka", self.kafka.model_copy(update={"topics": topics}))
        return self

    def enabled_tasks(self) -> dict[str, TaskSettings]:
        """The tasks this daemon serves, by name."""
        return {name: task for name, task in self.tasks.items() if task.enabled}

    def for_task(self, name: str) -> Settings:
        """These settings as task ``name``'s model sees them: ``inference.threads`` is the
        task's own ``threads`` when it sets them."""
        threads = self.tasks[name].threads_for(self.inference.threads)
        if threads == self.inference.threads:
            return self
        inference = self.inference.model_copy(update={"threads": threads})
        return self.model_copy(update={"inference": inference})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the YAML file, which arrives as init arguments.
        return env_settings, init_settings

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets masked, for the start-up log.

        Secret strings (tokens, passwords) and webhook header values show as ``**********``;
        every ``url`` loses its userinfo, query values and most of its path (:func:`redact_url`).
        """
        return _redact(self.model_dump(mode="json"))


def _redact(data: Any) -> Any:
    """Dumped settings with every ``url`` redacted and every ``headers`` value masked."""
    if isinstance(data, dict):
        return {key: _redact_value(key, value) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact(item) for item in data]
    return data


def _redact_value(key: str, value: Any) -> Any:
    if key.endswith("url") and isinstance(value, str) and value:
        return redact_url(value)
    if key == "headers" and isinstance(value, dict):
        return dict.fromkeys(value, "**********")
    return _redact(value)


_SECRET_WORDS = ("token", "password", "secret", "headers")


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        env = ENV_PREFIX + "__".join(str(part) for part in item["loc"]).upper()
        got = item.get("input")
        last = str(item["loc"][-1]).lower() if item["loc"] else ""
        if isinstance(got, dict) or any(w in where.lower() for w in _SECRET_WORDS):
            shown = ""  # a section, or a secret: never echo it
        elif isinstance(got, str) and last.endswith("url"):
            shown = f" (got {redact_url(got)!r})"
        else:
            shown = f" (got {got!r})"
        if isinstance(got, dict) and item["loc"]:
            fix = f"fix it in the YAML file or the {env}__* variables"
        else:
            fix = f"set it in the YAML file or {env}"
        lines.append(f"  {where}: {item['msg']}{shown}; {fix}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), apply overrides and the environment, validate everything."""
    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            msg = f"config file {path} does not exist; pass an existing YAML file to --config"
            raise ConfigError(msg)
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        data = loaded
    for dotted, value in overrides.items():
        _set_dotted(data, dotted.split("__"), value)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _set_dotted(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def resolve_model_dir(model_dir: Path) -> Path:
    """Find a model artifact: as given, else relative to the source checkout's root."""
    if model_dir.is_absolute() or model_dir.exists():
        return model_dir
    checkout = Path(__file__).resolve().parents[2] / model_dir
    return checkout if checkout.exists() else model_dir


def env_is_ci() -> bool:
    """True on CI (``CI=true``), where a missing server binary is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


__all__ = [
    "AlertSettings",
    "InferenceSettings",
    "InfluxSettings",
    "IngestSettings",
    "KafkaSettings",
    "LocalStoreSettings",
    "OutboxSettings",
    "SegmentationSettings",
    "Settings",
    "StorageSettings",
    "TaskSettings",
    "env_is_ci",
    "load_settings",
    "resolve_model_dir",
]
