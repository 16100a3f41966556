"""How the daemon's Kafka clients connect: bootstrap, TLS and SASL, in kafka-python's terms.

Every client seawatch makes (the admin client of :func:`~seawatch.ingest.kafka_io.ensure_topics`,
the consumer of ``FrameSource``, the producer of ``Publisher``) is built with
:func:`client_kwargs`, and inside :func:`connect_errors`, which turns a failed bootstrap
into a :class:`~seawatch.contracts.errors.BrokerError` that says what went wrong (an untrusted
certificate, a refused login, a plaintext port) rather than only that it timed out.

The TLS context is built here, not by kafka-python, so that a bad PEM file fails at start
with the setting's name, and so that every client shares one policy: TLS 1.2 or newer, the
broker's certificate checked against ``ssl_cafile`` (or the system's CAs) and, unless
``ssl_check_hostname`` is off, against the broker's name.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from seawatch.config import KafkaSettings
from seawatch.contracts.errors import BrokerError, ConfigError

log = logging.getLogger(__name__)


def uses_tls(settings: KafkaSettings) -> bool:
    return settings.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: KafkaSettings) -> bool:
    return settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments every kafka-python client of the daemon is built with."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "bootstrap_timeout_ms": settings.connect_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if uses_tls(settings):
        kwargs["ssl_context"] = ssl_context(settings)
    if uses_sasl(settings):
        password = settings.sasl_password
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    _warn_once(
        settings.bootstrap_servers,
        settings.security_protocol,
        settings.sasl_mechanism,
        settings.ssl_check_hostname,
    )
    return kwargs


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The client TLS context of ``settings``; ConfigError naming the file that is unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_cafile is not None:
        try:
            context.load_verify_locations(cafile=str(settings.ssl_cafile))
        except (ssl.SSLError, OSError) as exc:
            msg = (
                f"kafka.ssl_cafile: {settings.ssl_cafile} holds no usable PEM CA certificate "
                f"({exc}); give the PEM file of the CA that signed the broker's certificate"
            )
            raise ConfigError(msg) from None
    else:
        context.load_default_certs()
    if settings.ssl_certfile is not None:
        try:
            context.load_cert_chain(
                certfile=str(settings.ssl_certfile),
                keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            )
        except (ssl.SSLError, OSError) as exc:
            msg = (
                f"kafka.ssl_certfile/ssl_keyfile: {settings.ssl_certfile} and "
                f"{settings.ssl_keyfile or '(key in the same file)'} are not a matching PEM "
                f"certificate and unencrypted private key ({exc}); give the client "
                "certificate and its key"
            )
            raise ConfigError(msg) from None
    return context


@functools.cache
def _warn_once(servers: str, protocol: str, mechanism: str | None, check_hostname: bool) -> None:
    if protocol == "SASL_PLAINTEXT" and mechanism == "PLAIN":
        log.warning(
            "kafka_credentials_in_clear_text servers=%s security_protocol=SASL_PLAINTEXT "
            "sasl_mechanism=PLAIN effect='the password crosses the network readable' "
            "fix='security_protocol: SASL_SSL'",
            servers,
        )
    elif protocol == "SASL_PLAINTEXT":
        log.warning(
            "kafka_traffic_in_clear_text servers=%s security_protocol=SASL_PLAINTEXT "
            "effect='frames travel unencrypted' fix='security_protocol: SASL_SSL'",
            servers,
        )
    if protocol in ("SSL", "SASL_SSL") and not check_hostname:
        log.warning(
            "kafka_tls_hostname_unchecked servers=%s effect='any certificate the CA signed is "
            "accepted for this broker' fix='ssl_check_hostname: true'",
            servers,
        )


class _Failures(logging.Handler):
    """Collects the connection failures kafka-python logs while a client bootstraps (it
    retries until its timeout, then raises a bare "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Connection lost:" in message:
            self.reasons.append(message.split("Connection lost:", 1)[1].strip())
        elif "Bootstrap connection to" in message and " failed: " in message:
            reason = message.split(" failed: ", 1)[1]
            self.reasons.append(reason.split(" (backoff", 1)[0].strip())

    @property
    def reason(self) -> str | None:
        """The most telling failure: the last one that says more than "disconnected", else
        a disconnect (the broker hung up: it was reached) before a timeout (on a loaded host
        a refused TLS handshake can end in a timeout after several disconnects)."""
        vague = ("socket disconnected", "timed out")
        telling = [r for r in self.reasons if not any(v in r.lower() for v in vague)]
        if telling and telling[-1] == "'v'":
            # kafka-python 3.0.12 fails with KeyError('v') on a SCRAM server-final message
            # that carries an error (e=...) instead of the server's signature.
            return "the broker rejected the SCRAM exchange (server-final message without v=)"
        hung_up = [r for r in self.reasons if "socket disconnected" in r]
        return (telling or hung_up or self.reasons or [None])[-1]


@contextmanager
def connect_errors(settings: KafkaSettings, client: str) -> Iterator[None]:
    """Around a client's construction: a KafkaError becomes a BrokerError that says why."""
    from kafka.errors import KafkaError

    capture = _Failures()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(capture)
    try:
        yield
    except KafkaError as exc:
        raise BrokerError(describe_failure(settings, client, exc, capture.reason)) from exc
    finally:
        kafka_log.removeHandler(capture)


def describe_failure(
    settings: KafkaSettings, client: str, exc: BaseException, reason: str | None
) -> str:
    """The message of a failed connection: where, how, the likely cause and the fix."""
    how = f"security_protocol={settings.security_protocol}"
    if uses_sasl(settings):
        how += f" sasl_mechanism={settings.sasl_mechanism} sasl_username={settings.sasl_username}"
    cause = reason or str(exc)
    text = cause.upper()
    if "CERTIFICATE_VERIFY_FAILED" in text or "CERTIFICATE VERIFY FAILED" in text:
        if "HOSTNAME" in text or "IP ADDRESS MISMATCH" in text:
            hint = (
                "the broker's certificate does not name the host in bootstrap_servers; use "
                "the name in the certificate (or, knowingly, kafka.ssl_check_hostname: false)"
            )
        else:
            hint = (
                "the broker's certificate is not signed by a trusted CA; set kafka.ssl_cafile "
                "to the PEM of the CA that signed it"
            )
    elif "SSL" in text or "TLS" in text or "HANDSHAKE" in text:
        hint = (
            "the TLS handshake failed; check that the broker's listener speaks TLS "
            "(security_protocol SSL/SASL_SSL) and that the client certificate is accepted"
        )
    elif uses_tls(settings) and not uses_sasl(settings) and "DISCONNECTED" in text:
        hint = (
            "the broker closed the TLS connection; if it requires a client certificate, set "
            "kafka.ssl_certfile and kafka.ssl_keyfile to one signed by a CA it trusts"
        )
    elif uses_sasl(settings) and "MECHANISM" in text:
        hint = (
            f"the broker does not offer {settings.sasl_mechanism}; set kafka.sasl_mechanism "
            "to one it offers"
        )
    elif uses_sasl(settings):
        hint = (
            "SASL authentication failed or the broker closed the connection during it; check "
            "kafka.sasl_username, the password (sasl_password or sasl_password_file) and that "
            f"the broker knows this user for {settings.sasl_mechanism}"
        )
    else:
        hint = (
            "check kafka.bootstrap_servers, that the broker runs, and that its listener "
            "expects this security_protocol"
        )
    return (
        f"cannot connect to Kafka at {settings.bootstrap_servers} ({client}, {how}) within "
        f"{settings.connect_timeout_ms} ms: {cause}; {hint}"
    )


__all__ = ["client_kwargs", "connect_errors", "describe_failure", "ssl_context"]
