"""The daemon's Kafka clients (``ensure_topics``, ``Publisher``, ``FrameSource``) over TLS
and SASL, with kafka-python's real TLS handshake and SASL exchanges.

What runs against what (see ``kafka_gateway.py`` for why):

- SSL, SASL_SSL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, an untrusted CA and a wrong
  password: kafka-python <-> the test gateway (Python ``ssl`` TLS server; PLAIN and RFC 5802
  SCRAM server written for the tests) <-> a real plaintext Tansu 0.6.0 for everything after
  authentication (metadata, topic creation, produce, fetch, consumer group, commit).
- SCRAM-SHA-256 and PLAIN against Tansu's own SASL (``--authentication``): only the refusal,
  because no user can be created on that Tansu (so a successful login against Tansu's own
  SCRAM is not tested), and Tansu offers no PLAIN.
- Mutual TLS (``ssl_certfile``/``ssl_keyfile``) against the gateway: accepted with the client
  certificate, refused without it.
- Not tested: TLS terminated by Tansu itself (this build cannot), a successful login against
  Tansu's own SCRAM, and a real Apache Kafka.
"""

from __future__ import annotations

import gc
import time
import warnings

import pytest
from pydantic import SecretStr

from seawatch.config import KafkaSettings
from seawatch.contracts.errors import BrokerError
from seawatch.ingest.broker import free_port
from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from tests.security.kafka_gateway import KafkaGateway, make_pki, tansu

pytestmark = pytest.mark.integration

PASSWORD = "pw-7d1c-gateway"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _settings(servers: str, unique: str, **security) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=servers,
        topics=[f"t{unique}.frames"],
        group_id=f"g{unique}",
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        connect_timeout_ms=3000,
        **security,
    )


def _round_trip(kafka: KafkaSettings) -> None:
    """Create the topic, publish one frame, consume and commit it, all through ``kafka``."""
    topic = kafka.topics[0]
    assert ensure_topics(kafka, [topic], 1) == [topic]
    publisher = Publisher(kafka)
    try:
        publisher.send(topic, b"frame-bytes", b"cam-1", [("content-type", b"image/png")])
        publisher.flush(timeout_s=20)
    finally:
        publisher.close()
    source = FrameSource(kafka)
    try:
        records: list = []
        deadline = time.monotonic() + 30
        while not records and time.monotonic() < deadline:
            records = source.poll_batch(10, 100, idle_ms=500)
        assert [r.value for r in records] == [b"frame-bytes"]
        source.commit(records)
    finally:
        source.close()


def test_ssl_round_trip_through_a_tls_listener(pki, unique):
    port = free_port()
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(upstream, port=port, tls=(pki.server_cert, pki.server_key)),
    ):
        kafka = _settings(f"127.0.0.1:{port}", unique, security_protocol="SSL", ssl_cafile=pki.ca)
        _round_trip(kafka)


def test_mutual_tls_needs_the_client_certificate(pki, unique):
    port = free_port()
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(upstream, port=port, tls=(pki.server_cert, pki.server_key), client_ca=pki.ca),
    ):
        servers = f"127.0.0.1:{port}"
        anonymous = _settings(servers, unique, security_protocol="SSL", ssl_cafile=pki.ca)
        with pytest.raises(BrokerError, match=r"kafka\.ssl_certfile and kafka\.ssl_keyfile"):
            ensure_topics(anonymous, anonymous.topics, 1)
        kafka = _settings(
            servers,
            unique,
            security_protocol="SSL",
            ssl_cafile=pki.ca,
            ssl_certfile=pki.client_cert,
            ssl_keyfile=pki.client_key,
        )
        _round_trip(kafka)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_ssl_round_trip(pki, unique, mechanism):
    port = free_port()
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(
            upstream, port=port, tls=(pki.server_cert, pki.server_key), users={"sw": PASSWORD}
        ) as gateway,
    ):
        kafka = _settings(
            f"localhost:{port}",  # the certificate names localhost too: hostname checked
            unique,
            security_protocol="SASL_SSL",
            ssl_cafile=pki.ca,
            sasl_mechanism=mechanism,
            sasl_username="sw",
            sasl_password=SecretStr(PASSWORD),
        )
        _round_trip(kafka)
    assert gateway.attempts >= 3 and gateway.refused == 0  # admin, producer, consumer


@pytest.fixture(autouse=True)
def _collect_failed_clients_sockets(caplog):
    """A kafka-python 3.0.12 client whose bootstrap fails leaves sockets open: its
    selector's wake-up socket pair, and the socket of a failed TLS handshake
    (``net/manager.py`` ``_build_transport``), which the log records pytest captured hold
    through their exceptions. Drop those records and collect the sockets quietly at
    teardown, rather than have them reported at the end of the session."""
    yield
    caplog.get_records("call").clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_an_untrusted_ca_fails_with_a_clear_broker_error(pki, unique):
    port = free_port()
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(upstream, port=port, tls=(pki.server_cert, pki.server_key)),
    ):
        kafka = _settings(
            f"127.0.0.1:{port}", unique, security_protocol="SSL", ssl_cafile=pki.other_ca
        )
        with pytest.raises(BrokerError) as info:
            ensure_topics(kafka, kafka.topics, 1)
        with pytest.raises(BrokerError):
            Publisher(kafka)
    message = str(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "kafka.ssl_cafile" in message and "security_protocol=SSL" in message


def test_a_wrong_password_fails_with_a_clear_broker_error(pki, unique):
    port = free_port()
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(
            upstream, port=port, tls=(pki.server_cert, pki.server_key), users={"sw": PASSWORD}
        ) as gateway,
    ):
        kafka = _settings(
            f"127.0.0.1:{port}",
            unique,
            security_protocol="SASL_SSL",
            ssl_cafile=pki.ca,
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="sw",
            sasl_password=SecretStr("not-the-password"),
        )
        with pytest.raises(BrokerError) as info:
            FrameSource(kafka)
    message = str(info.value)
    assert gateway.refused >= 1
    assert "SASL authentication failed" in message and "kafka.sasl_username" in message
    assert "consumer" in message and "not-the-password" not in message


def test_a_plaintext_client_at_a_tls_listener_fails_clearly(pki, unique):
    port = free_port()
    with (
        tansu(advertised_port=port) as upstream,
        KafkaGateway(upstream, port=port, tls=(pki.server_cert, pki.server_key)),
    ):
        kafka = _settings(f"127.0.0.1:{port}", unique)
        with pytest.raises(BrokerError, match="expects this security_protocol"):
            ensure_topics(kafka, kafka.topics, 1)


@pytest.mark.parametrize(
    ("mechanism", "says"),
    [("SCRAM-SHA-256", "rejected the SCRAM exchange"), ("PLAIN", "SASL authentication failed")],
)
def test_tansu_own_sasl_refuses_an_unknown_user(unique, mechanism, says):
    port = free_port()
    with tansu(advertised_port=port, authentication=True) as tansu_port:
        kafka = _settings(
            f"127.0.0.1:{tansu_port}",
            unique,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_username="nobody",
            sasl_password=SecretStr("pw"),
        )
        with pytest.raises(BrokerError) as info:
            Publisher(kafka)
    assert says in str(info.value) and f"sasl_mechanism={mechanism}" in str(info.value)
