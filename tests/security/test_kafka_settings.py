"""Kafka security settings: cross-field checks at load time and the translation into
kafka-python's keyword arguments (no broker needed)."""

from __future__ import annotations

import logging
import ssl

import pytest
from pydantic import SecretStr

from seawatch.config import KafkaSettings, load_settings
from seawatch.contracts.errors import ConfigError
from seawatch.ingest import kafka_security
from seawatch.ingest.kafka_security import client_kwargs, describe_failure, ssl_context
from tests.security.kafka_gateway import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _refused(**kafka) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**{f"kafka__{k}": v for k, v in kafka.items()})
    return str(info.value)


def test_plaintext_by_default():
    kwargs = client_kwargs(KafkaSettings())
    assert kwargs["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in kwargs and "sasl_mechanism" not in kwargs
    assert kwargs["bootstrap_servers"] == "127.0.0.1:9092"
    assert kwargs["bootstrap_timeout_ms"] == 30_000


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_needs_mechanism_user_and_password(protocol):
    text = _refused(security_protocol=protocol)
    assert "kafka.sasl_mechanism" in text and "kafka.sasl_username" in text
    assert "kafka.sasl_password (or kafka.sasl_password_file)" in text
    text = _refused(
        security_protocol=protocol, sasl_mechanism="PLAIN", sasl_username="sw", sasl_password=""
    )
    assert "kafka.sasl_password (or kafka.sasl_password_file) is not set" in text


def test_credentials_without_sasl_are_refused_not_ignored():
    text = _refused(sasl_username="sw", sasl_password="pw")
    assert "kafka.sasl_username is set but security_protocol is PLAINTEXT" in text
    assert "SASL_SSL" in text and "pw" not in text.replace("PLAINTEXT", "")


def test_tls_files_without_tls_are_refused(pki):
    text = _refused(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="sw",
        sasl_password="pw",
        ssl_cafile=str(pki.ca),
    )
    assert "kafka.ssl_cafile is set but security_protocol is SASL_PLAINTEXT" in text


def test_tls_files_must_exist_and_be_readable(tmp_path, pki):
    text = _refused(security_protocol="SSL", ssl_cafile=str(tmp_path / "nope.pem"))
    assert "kafka.ssl_cafile" in text and "does not exist" in text
    assert "SEAWATCH_KAFKA__SSL_CAFILE" in text
    text = _refused(security_protocol="SSL", ssl_keyfile=str(pki.server_key))
    assert "kafka.ssl_keyfile is set without kafka.ssl_certfile" in text


def test_password_and_password_file_both_set_are_refused(tmp_path):
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    path.chmod(0o600)
    text = _refused(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="sw",
        sasl_password="other",
        sasl_password_file=str(path),
    )
    assert "kafka.sasl_password and kafka.sasl_password_file are both set" in text
    assert "from-file" not in text and "other" not in text


def test_unknown_protocol_and_mechanism_list_the_choices():
    assert "'SASL_SSL'" in _refused(security_protocol="TLS")
    text = _refused(
        security_protocol="SASL_SSL",
        sasl_mechanism="GSSAPI",
        sasl_username="sw",
        sasl_password="pw",
    )
    assert "'SCRAM-SHA-512'" in text


def test_sasl_ssl_kwargs(pki):
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        ssl_cafile=pki.ca,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="sw",
        sasl_password=SecretStr("pw"),
        connect_timeout_ms=5000,
    )
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "sw" and kwargs["sasl_plain_password"] == "pw"
    assert kwargs["bootstrap_timeout_ms"] == 5000
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_kwargs_are_ones_kafka_python_knows(pki):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        ssl_cafile=pki.ca,
        sasl_mechanism="PLAIN",
        sasl_username="sw",
        sasl_password=SecretStr("pw"),
    )
    for client in (KafkaAdminClient, KafkaConsumer, KafkaProducer):
        assert set(client_kwargs(settings)) <= set(client.DEFAULT_CONFIG), client


def test_client_certificate_and_unchecked_hostname(pki):
    settings = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=pki.ca,
        ssl_certfile=pki.server_cert,  # any certificate and its key will do here
        ssl_keyfile=pki.server_key,
        ssl_check_hostname=False,
    )
    context = ssl_context(settings)
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_unusable_pem_files_name_the_setting(tmp_path, pki):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"kafka\.ssl_cafile: .*junk\.pem holds no usable PEM"):
        ssl_context(KafkaSettings(security_protocol="SSL", ssl_cafile=junk))
    mismatched = KafkaSettings(
        security_protocol="SSL", ssl_certfile=pki.server_cert, ssl_keyfile=pki.other_ca
    )
    with pytest.raises(ConfigError, match=r"kafka\.ssl_certfile/ssl_keyfile"):
        ssl_context(mismatched)


def test_plain_over_sasl_plaintext_warns_once(caplog):
    kafka_security._warn_once.cache_clear()
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="sw",
        sasl_password=SecretStr("pw-in-clear"),
    )
    with caplog.at_level(logging.WARNING, logger="seawatch.ingest.kafka_security"):
        client_kwargs(settings)
        client_kwargs(settings)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("kafka_credentials_in_clear_text")
    assert "fix='security_protocol: SASL_SSL'" in lines[0] and "pw-in-clear" not in lines[0]


def test_failure_messages_never_carry_the_password():
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="sw",
        sasl_password=SecretStr("pw-77"),
    )
    text = describe_failure(settings, "producer", TimeoutError("x"), "'v'")
    assert "sasl_username=sw" in text and "pw-77" not in text
    assert "kafka.sasl_username" in text


def test_a_refused_client_certificate_is_named_even_when_the_last_try_timed_out():
    """On a loaded CI host kafka-python logged several disconnects (the broker hung up on a
    client without certificate) and then a timeout; the timeout must not hide the hang-ups."""
    import logging

    from seawatch.ingest.kafka_security import _Failures

    capture = _Failures()
    for message in [
        "<KafkaConnection node_id=bootstrap-0>: Connection lost: KafkaConnectionError: "
        "socket disconnected",
        "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket "
        "disconnected (backoff 0.05 secs)",
        "<KafkaConnection node_id=bootstrap-0>: Connection lost: KafkaConnectionError: "
        "Connection timed out",
        "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: Connection timed "
        "out (backoff 5.63 secs)",
    ]:
        capture.emit(logging.LogRecord("kafka", logging.ERROR, "", 0, message, None, None))
    settings = KafkaSettings(security_protocol="SSL")
    text = describe_failure(settings, "admin client", TimeoutError("x"), capture.reason)
    assert "kafka.ssl_certfile and kafka.ssl_keyfile" in text
