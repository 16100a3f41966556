"""The dead-letter queue and the topic keeper across a broker outage (real Tansu)."""

from __future__ import annotations

import gc
import threading
import time
from types import SimpleNamespace

import pytest

from seawatch.contracts.errors import BrokerError
from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.dead_letters import DeadLetterQueue
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.topic_keeper import TopicKeeper
from tests.integration.helpers import read_topic

# kafka-python leaves connecting sockets unclosed when a producer is closed while its broker
# is down (the garbage collector closes them, with a ResourceWarning): the library's, not a
# leak of seawatch's. They are collected here so they do not surface in a later test.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_library_sockets():
    yield
    time.sleep(1)  # the closed clients' network threads let go of their sockets
    gc.collect()


def _record(offset: int) -> SimpleNamespace:
    return SimpleNamespace(
        topic="frames.plankton",
        partition=0,
        offset=offset,
        key=b"flowcam-01",
        value=b"not an image %d" % offset,
        headers=[("content-type", b"image/png")],
    )


def test_dead_letters_wait_out_a_broker_restart_and_arrive_once(unique):
    topic = f"t{unique}.dlq"
    with EmbeddedBroker() as broker:
        publisher = Publisher(broker.bootstrap_servers)
        dlq = DeadLetterQueue(publisher, topic, first_wait_s=0.2, max_wait_s=1.0)
        keeper = TopicKeeper(
            lambda: ensure_topics(broker.bootstrap_servers, [topic], 1), interval_s=0.5
        )
        ensure_topics(broker.bootstrap_servers, [topic], 1)
        broker.stop()
        for offset in range(3):
            dlq.send(_record(offset), "decode", f"[decode:value] broken {offset}")
        flushed = threading.Event()

        def flush() -> None:
            dlq.flush()
            flushed.set()

        thread = threading.Thread(target=flush, daemon=True)
        thread.start()
        time.sleep(2)
        assert not flushed.is_set() and dlq.pending == 3  # nothing acknowledged, none dropped
        broker.start()
        deadline = time.monotonic() + 60
        while not flushed.is_set() and time.monotonic() < deadline:
            keeper.check()  # the restarted broker lost the topic; the pipeline does this idle
            time.sleep(0.2)
        assert flushed.is_set() and dlq.pending == 0
        assert keeper.recreated == [topic]
        records = read_topic(broker.bootstrap_servers, topic, 4, timeout_s=5)
        publisher.close()
    assert sorted(r.value for r in records) == [b"not an image %d" % i for i in range(3)]
    headers = dict(records[0].headers)
    assert headers["error-stage"] == b"decode"
    assert headers["source"].startswith(b"frames.plankton/0/")


def test_stopping_while_the_broker_is_down_raises_so_offsets_stay_uncommitted(unique):
    with EmbeddedBroker() as broker:
        publisher = Publisher(broker.bootstrap_servers)
        broker.stop()
        dlq = DeadLetterQueue(publisher, f"t{unique}.dlq", first_wait_s=0.1)
        dlq.send(_record(7), "headers", "[headers:lat] out of range")
        with pytest.raises(BrokerError, match="1 dead letters not acknowledged"):
            dlq.flush(should_stop=lambda: True)
        assert dlq.pending == 1
        broker.start()
        publisher.close()


def test_the_keeper_checks_at_most_every_interval_and_survives_an_unreachable_broker():
    now = [0.0]
    calls = []

    def create() -> list[str]:
        calls.append(now[0])
        if len(calls) == 1:
            raise BrokerError("cannot reach Kafka")
        return ["frames.dlq"] if len(calls) == 2 else []

    keeper = TopicKeeper(create, interval_s=5, clock=lambda: now[0])
    for t in (1.0, 5.0, 6.0, 10.0, 12.0, 15.0):
        now[0] = t
        keeper.check()
    assert calls == [5.0, 10.0, 15.0]
    assert keeper.recreated == ["frames.dlq"]
