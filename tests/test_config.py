"""Settings: defaults, YAML, environment precedence and errors that name the field."""

from __future__ import annotations

import pytest

from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError


def test_defaults_are_valid_and_embedded():
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.storage.influx.url is None
    assert settings.storage.local.enabled


def test_yaml_then_environment(tmp_path, monkeypatch):
    path = tmp_path / "seawatch.yaml"
    path.write_text("kafka:\n  group_id: ship\n  partitions: 8\ninference:\n  max_batch: 32\n")
    monkeypatch.setenv("SEAWATCH_INFERENCE__MAX_BATCH", "16")
    settings = load_settings(path)
    assert settings.kafka.group_id == "ship" and settings.kafka.partitions == 8
    assert settings.inference.max_batch == 16  # the environment wins


@pytest.mark.parametrize(
    ("yaml_text", "field", "allowed"),
    [
        (
            "kafka:\n  auto_offset_reset: middle\n",
            "kafka.auto_offset_reset",
            "'earliest' or 'latest'",
        ),
        ("inference:\n  max_batch: 0\n", "inference.max_batch", "greater than or equal to 1"),
        ("kafka:\n  bootstrap_servers: nohostport\n", "kafka.bootstrap_servers", "host:port"),
        ("storage:\n  influx:\n    url: influx:8086\n", "storage.influx.url", "http://"),
        ("inference:\n  backend: cuda-magic\n", "inference.backend", "'onnxruntime'"),
        ("kafka:\n  gruop_id: typo\n", "kafka.gruop_id", "Extra inputs are not permitted"),
    ],
)
def test_bad_values_fail_with_field_and_allowed_values(tmp_path, yaml_text, field, allowed):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert field in text and allowed in text
    assert "SEAWATCH_" + field.replace(".", "__").upper() in text


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("SEAWATCH_STORAGE__INFLUX__TOKEN", "s3cr3t-token")
    settings = load_settings()
    assert settings.storage.influx.token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t-token" not in str(settings.masked())


def test_a_task_may_run_its_model_on_threads_of_its_own(tmp_path):
    """otolith defaults to every core (its loop waits on the model); the others take
    inference.threads; a worker of ``run --workers N`` keeps to one thread a task."""
    import os

    from seawatch.cli import _as_worker

    cores = len(os.sched_getaffinity(0))
    settings = load_settings(inference__threads=1)
    assert settings.tasks["otolith"].threads == "all"
    assert settings.for_task("otolith").inference.threads == cores
    assert settings.for_task("plankton") is settings
    pinned = load_settings(tasks={"plankton": {"threads": 3}})
    assert pinned.for_task("plankton").inference.threads == 3
    assert _as_worker(settings, 0).for_task("otolith").inference.threads == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  fish:\n    threads: 0\n")
    with pytest.raises(ConfigError, match=r"tasks\.fish\.threads"):
        load_settings(bad)
