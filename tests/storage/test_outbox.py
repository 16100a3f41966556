"""The durable outbox (real SQLite) and its drainer (against a real HTTP server)."""

from __future__ import annotations

import http.server
import sqlite3
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from seawatch.config import InfluxSettings
from seawatch.ingest.broker import free_port
from seawatch.storage.influx_outbox import Drainer
from seawatch.storage.influx_writer import InfluxWriter, WriteRefused
from seawatch.storage.outbox import Outbox


def test_appended_lines_survive_a_restart_and_leave_only_when_removed(tmp_path):
    path = tmp_path / "outbox.db"
    outbox = Outbox(path)
    outbox.append([f"m v={i}i {i}" for i in range(7)], chunk_lines=3)  # chunks of 3, 3, 1
    outbox.append(["m v=7i 7"])
    assert outbox.backlog == 8
    outbox.close()

    reopened = Outbox(path)
    assert reopened.backlog == 8
    first = reopened.oldest(max_lines=5)
    assert [c.line_count for c in first] == [3]  # a chunk is never split
    assert reopened.oldest(max_lines=1)[0].body.startswith("m v=0i")  # at least one chunk
    reopened.remove(first)
    assert reopened.backlog == 5
    rest = reopened.oldest(max_lines=100)
    assert [c.line_count for c in rest] == [3, 1, 1]
    reopened.reject(rest[:1], "HTTP 400: bad field")
    assert reopened.backlog == 2
    assert reopened.rejected_lines() == 3
    reopened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reason, body = db.execute("SELECT reason, body FROM rejected").fetchone()
    assert reason == "HTTP 400: bad field"
    assert body.splitlines()[0] == "m v=3i 3"


class _Refusing(http.server.BaseHTTPRequestHandler):
    """An InfluxDB stand-in that refuses any body containing ``bad`` with HTTP 400."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if "bad" in body:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"code":"invalid","message":"unable to parse bad"}')
            return
        type(self).received.extend(body.splitlines())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    _Refusing.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_lines_the_server_refuses_for_good_are_kept_aside_and_the_rest_delivered(
    tmp_path, refusing_server
):
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(["m v=1i 1", "m v=2i 2"])
    outbox.append(["bad line"])
    outbox.append(["m v=3i 3"])
    writer = InfluxWriter(InfluxSettings(url=refusing_server))
    drainer = Drainer(outbox, writer, batch_lines=100, base_backoff_s=0.01, max_backoff_s=0.1)
    with pytest.raises(WriteRefused) as refused:
        drainer.drain_once()  # all three chunks in one request: refused, then one by one
    assert not refused.value.retriable
    assert outbox.backlog == 0
    assert outbox.rejected_lines() == 1
    assert _Refusing.received == ["m v=1i 1", "m v=2i 2", "m v=3i 3"]
    assert drainer.delivered_lines == 3
    writer.close()
    outbox.close()


def test_an_unreachable_server_leaves_everything_in_the_outbox(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(["m v=1i 1"])
    writer = InfluxWriter(InfluxSettings(url=f"http://127.0.0.1:{free_port()}", timeout_ms=500))
    drainer = Drainer(outbox, writer, batch_lines=100, base_backoff_s=0.01, max_backoff_s=0.1)
    with pytest.raises(WriteRefused) as refused:
        drainer.drain_once()
    assert refused.value.retriable
    assert outbox.backlog == 1
    assert outbox.rejected_lines() == 0
    writer.close()
    outbox.close()
