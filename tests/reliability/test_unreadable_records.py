"""Records the Kafka client cannot parse are stepped over, never stall the stream (real Tansu)."""

from __future__ import annotations

import time

import pytest

from seawatch.config import KafkaSettings
from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from seawatch.ingest.unreadable import UnreadableRecord

pytestmark = pytest.mark.integration


class _RawKey(str):
    """A header key written as bytes that are not UTF-8 (kafka-python cannot read it back)."""

    def encode(self, *args, **kwargs) -> bytes:
        return b"\xff\xfe-" + super().encode()


@pytest.mark.parametrize("own_batch", [True, False], ids=["own-batch", "shared-batch"])
def test_an_unreadable_record_becomes_a_placeholder_and_polling_goes_on(
    broker, unique, own_batch: bool
):
    topic = f"t{unique}.frames.plankton"
    ensure_topics(broker.bootstrap_servers, [topic], 1)
    publisher = Publisher(broker.bootstrap_servers)
    for i in range(20):
        headers = [("content-type", b"image/png")]
        if i == 10:
            if own_batch:
                publisher.flush()
            headers.append((_RawKey("x-note"), b"1"))
        publisher.send(topic, b"value %d" % i, b"cam", headers)
        if i == 10 and own_batch:
            publisher.flush()
    publisher.flush()
    publisher.close()
    source = FrameSource(
        KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            topics=[topic],
            group_id=f"g{unique}",
            max_poll_interval_ms=6000,
            session_timeout_ms=6000,
        )
    )
    records: list = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < 20 and time.monotonic() < deadline:
            records += source.poll_batch(64, 50)
    finally:
        source.close()
    assert [r.offset for r in records] == list(range(20))
    unreadable = [r.offset for r in records if isinstance(r, UnreadableRecord)]
    # kafka-python reads a producer batch front to back: what follows the bad record in its
    # batch cannot be read either, and each becomes its own placeholder
    assert unreadable == ([10] if own_batch else list(range(10, 20)))
    assert all("UnicodeDecodeError" in r.error for r in records if r.offset in unreadable)
