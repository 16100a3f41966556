"""A broker restart: Tansu keeps topics and offsets in memory, so after a restart the daemon's
topics are gone. The daemon must reconnect, recreate what it needs and go on."""

from __future__ import annotations

import time

import pytest

from seawatch.ingest.broker import EmbeddedBroker
from seawatch.ingest.kafka_io import Publisher
from seawatch.ingest.publish import publish_messages
from seawatch.models.synthetic_stream import synthetic_stream
from tests.daemon_process import DaemonProcess, daemon_env, stored_count
from tests.integration.helpers import publish_synthetic, read_topic, settings_for

pytestmark = pytest.mark.integration


def _topics(bootstrap: str) -> set[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_the_daemon_survives_a_broker_restart_that_loses_every_topic(tmp_path, unique, model_dir):
    with EmbeddedBroker() as broker:
        settings = settings_for(tmp_path, broker, unique, model_dir)
        kafka = settings.kafka
        publish_synthetic(settings, 200, seed=1)
        store = settings.storage.local.path
        with DaemonProcess(daemon_env(settings), tmp_path / "daemon.log") as daemon:
            daemon.wait_for(lambda: stored_count(store) >= 200, 120, "the first 200 frames")
            broker.stop()
            time.sleep(3)  # the daemon polls, commits and heartbeats against a dead broker
            assert daemon.alive(), daemon.log()[-3000:]
            broker.start()
            needed = {*kafka.topics, kafka.dlq_topic}
            daemon.wait_for(
                lambda: needed <= _topics(broker.bootstrap_servers), 60, "topics recreated"
            )
            start_ns = time.time_ns()  # new frames, new capture times
            messages = list(synthetic_stream(200, seed=2, start_ns=start_ns, broken_share=0.05))
            broken = sum(m.broken is not None for m in messages)
            publisher = Publisher(broker.bootstrap_servers)
            try:
                publish_messages(publisher, kafka.topics[0], messages)
            finally:
                publisher.close()
            valid = 200 + len(messages) - broken
            daemon.wait_for(lambda: stored_count(store) >= valid, 120, "the new frames")
            dead = read_topic(broker.bootstrap_servers, kafka.dlq_topic, broken)
            code, seconds = daemon.terminate()
            log = daemon.log()
        print(f"after the restart: {len(messages) - broken} frames stored, {len(dead)} in the DLQ")
        assert code == 0 and seconds < 10, log[-3000:]
        assert stored_count(store) == valid
        assert len(dead) == broken
        assert "Traceback" not in log
