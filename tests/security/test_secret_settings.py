"""Secrets from files, masked settings and redacted URLs."""

from __future__ import annotations

import json
import logging

import pytest

from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError
from seawatch.secrets import read_secret_file, redact_url


def _secret(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "secret"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("text", "value"),
    [("tok\n", "tok"), ("tok\r\n", "tok"), ("tok", "tok"), ("  tok  \n", "  tok  ")],
)
def test_one_trailing_newline_is_stripped(tmp_path, text, value):
    assert read_secret_file(_secret(tmp_path, text), "x.token_file") == value


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "is empty"), ("\n", "is empty"), ("a\nb\n", "more than one line")],
)
def test_empty_and_multi_line_files_are_refused(tmp_path, text, says):
    with pytest.raises(ValueError, match=says) as info:
        read_secret_file(_secret(tmp_path, text), "x.token_file")
    assert "x.token_file" in str(info.value)


def test_missing_and_directory_are_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_secret_file(tmp_path / "nope", "x.token_file")
    with pytest.raises(ValueError, match="is a directory"):
        read_secret_file(tmp_path, "x.token_file")


def test_a_file_others_can_read_is_accepted_with_a_warning(tmp_path, caplog):
    path = _secret(tmp_path, "tok\n", 0o644)
    with caplog.at_level(logging.WARNING, logger="seawatch.secrets"):
        assert read_secret_file(path, "x.token_file") == "tok"
    assert "secret_file_readable_by_others field=x.token_file" in caplog.text
    assert "chmod 600" in caplog.text and "tok" not in caplog.text.replace("token_file", "")


def test_token_files_feed_the_tokens(tmp_path, monkeypatch):
    influx = tmp_path / "influx"
    influx.write_text("influx-tok\n")
    grafana = tmp_path / "grafana"
    grafana.write_text("grafana-tok\n")
    sasl = tmp_path / "sasl"
    sasl.write_text("sasl-pw\n")
    for path in (influx, grafana, sasl):
        path.chmod(0o600)
    monkeypatch.setenv("SEAWATCH_DASHBOARDS__GRAFANA__TOKEN_FILE", str(grafana))
    settings = load_settings(
        storage__influx__token_file=str(influx),
        kafka__security_protocol="SASL_SSL",
        kafka__sasl_mechanism="SCRAM-SHA-512",
        kafka__sasl_username="sw",
        kafka__sasl_password_file=str(sasl),
    )
    assert settings.storage.influx.token.get_secret_value() == "influx-tok"
    assert settings.dashboards.grafana.token.get_secret_value() == "grafana-tok"
    assert settings.kafka.sasl_password.get_secret_value() == "sasl-pw"
    # validating the loaded settings again (secret and its file both set, equal) is fine
    assert (
        type(settings)(**settings.model_dump()).kafka.sasl_password == settings.kafka.sasl_password
    )


def test_a_secret_and_its_file_both_set_are_refused(tmp_path, monkeypatch):
    path = _secret(tmp_path, "from-file\n")
    monkeypatch.setenv("SEAWATCH_STORAGE__INFLUX__TOKEN", "from-env")
    with pytest.raises(ConfigError) as info:
        load_settings(storage__influx__token_file=str(path))
    text = str(info.value)
    assert "storage.influx.token and storage.influx.token_file are both set" in text
    assert "SEAWATCH_STORAGE__INFLUX__TOKEN" in text
    assert "from-env" not in text and "from-file" not in text


def test_a_bad_token_file_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"dashboards\.grafana\.token_file: .* does not exist"):
        load_settings(dashboards__grafana__token_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"storage\.influx\.token_file: .* is empty"):
        load_settings(storage__influx__token_file=str(_secret(tmp_path, "")))


def test_masked_hides_tokens_passwords_headers_and_url_secrets(tmp_path):
    settings = load_settings(
        storage__influx__url="https://influx.example:8086/api?sig=influx-q",
        storage__influx__token="influx-tok",
        dashboards__grafana__token="grafana-tok",
        kafka__security_protocol="SASL_PLAINTEXT",
        kafka__sasl_mechanism="SCRAM-SHA-256",
        kafka__sasl_username="sw",
        kafka__sasl_password="sasl-pw",
        alerts__webhooks=[
            {
                "url": "https://ops.example/hooks/T0/B0/path-secret?key=query-secret",
                "headers": {"Authorization": "Bearer header-secret"},
            }
        ],
    )
    text = json.dumps(settings.masked())
    for secret in ("influx-q", "influx-tok", "grafana-tok", "sasl-pw", "path-secret",
                   "query-secret", "header-secret"):  # fmt: skip
        assert secret not in text
    hook = settings.masked()["alerts"]["webhooks"][0]
    assert hook["url"] == "https://ops.example/hooks/***?key=***"
    assert hook["headers"] == {"Authorization": "**********"}
    assert settings.masked()["kafka"]["sasl_username"] == "sw"


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("https://u:p@h.example:8443/hook?token=abc&x=1#frag", "https://h.example:8443/hook?token=***&x=***#***"),
        ("https://h.example/hook?bare-secret", "https://h.example/hook?***"),
        ("https://hooks.example/services/T0/B0/XXXX", "https://hooks.example/services/***"),
        ("http://[::1]:9000/a", "http://[::1]:9000/a"),
        ("http://h.example", "http://h.example"),
        ("http://h.example:notaport/", "***"),
    ],
)  # fmt: skip
def test_redact_url(url, logged):
    assert redact_url(url) == logged
