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
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from seawatch.alert_settings import DEFAULT_RULES, Rule, WebhookSettings
from seawatch.contracts.errors import ConfigError
from seawatch.dashboard_settings import DashboardSettings
from seawatch.kafka_settings import KafkaSettings
from seawatch.review_settings import ReviewSettings
from seawatch.secrets import redact_url
from seawatch.settings_base import ENV_PREFIX, Section
from seawatch.storage_settings import (
    InfluxSettings,
    LocalStoreSettings,
    OutboxSettings,
    StorageSettings,
)
from seawatch.task_settings import TASK_NAME, TaskSettings, merge_tasks


class SegmentationSettings(Section):
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


class IngestSettings(Section):
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


class InferenceSettings(Section):
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


class AlertSettings(Section):
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


def _rule(values: dict) -> Rule:
    return TypeAdapter(Rule).validate_python(values)


class HttpSettings(Section):
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
