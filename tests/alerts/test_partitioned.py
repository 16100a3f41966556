"""The alert state of a partition handed from one worker to the next through the real broker:
records of partitions not owned are not judged, a snapshot's records are not judged twice,
alerts sent after it are not sent again, and a revoked partition's instruments are dropped."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import TypeAdapter

from seawatch.alert_settings import Rule
from seawatch.alerts.engine import AlertEngine
from seawatch.alerts.outputs import AlertOutputs
from seawatch.alerts.partitioned import PartitionedAlerts
from seawatch.config import KafkaSettings
from seawatch.contracts.frames import SourceRef
from seawatch.contracts.partitions import Partition
from seawatch.contracts.records import OtolithRecord
from seawatch.ingest.kafka_io import Publisher, ensure_topics
from seawatch.ingest.keyed_topics import KeyedTopics
from tests.storage.factories import make_task_record

pytestmark = pytest.mark.integration
T0 = 1_780_000_000_000_000_000
P0, P1 = Partition("frames.otolith", 0), Partition("frames.otolith", 1)


def specimen(offset: int, partition: Partition = P0, flagged: bool = True):
    """An otolith frame at ``offset``: a specimen of its own, flagged (an alert) or not."""
    record = make_task_record(
        "otolith",
        T0 + offset * 10**9,
        otolith=OtolithRecord(f"s-{offset}", 0.9 if flagged else 0.1, flagged, 0.5, None, None),
    )
    return dataclasses.replace(record, ref=SourceRef(partition.topic, partition.partition, offset))


@pytest.fixture
def kafka(broker, unique):
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, group_id=f"g{unique}")
    ensure_topics(settings, [f"t{unique}.state"], 1, {"cleanup.policy": "compact"})
    ensure_topics(settings, [f"t{unique}.alerts"], 2)
    return settings


class Worker:
    """One worker's alert side: the rules, their state on the broker, the alerts topic."""

    def __init__(self, kafka: KafkaSettings, unique: str, interval_s: float = 0.0) -> None:
        self.publisher = Publisher(kafka)
        self.log = KeyedTopics(kafka, self.publisher)
        self.outputs = AlertOutputs(publisher=self.publisher, topic=f"t{unique}.alerts")
        rule = TypeAdapter(Rule).validate_python({"name": "oto", "kind": "otolith_anomaly"})
        self.alerts = PartitionedAlerts(
            AlertEngine([rule]),
            group_id=kafka.group_id,
            log_=self.log,
            state_topic=f"t{unique}.state",
            alerts_topic=f"t{unique}.alerts",
            sent_positions=self.outputs.sent_positions,
            interval_s=interval_s,
        )

    def batch(self, records, *, checkpoint: bool = True) -> list[str]:
        """Judge and send, as the pipeline does; the subjects of the alerts sent."""
        alerts = self.alerts.evaluate(records)
        self.outputs.emit(alerts)
        self.outputs.flush_kafka()
        if checkpoint:
            assert self.alerts.checkpoint()
        return [a.subject for a in alerts]

    def close(self) -> None:
        self.log.close()
        self.publisher.close()


def test_a_partition_handed_over_after_a_crash_is_judged_once_and_alerts_are_sent_once(
    kafka, unique
):
    first = Worker(kafka, unique)
    try:
        assert first.batch([specimen(0)]) == []  # nothing is owned yet
        first.alerts.partitions_assigned([P0])
        assert first.batch([specimen(o) for o in range(5)]) == [f"s-{o}" for o in range(5)]
        assert first.batch([specimen(0, P1)]) == []  # not this worker's partition
        # alerts sent, then a crash before the state covering them was written
        assert first.batch([specimen(5), specimen(6)], checkpoint=False) == ["s-5", "s-6"]
    finally:
        first.close()

    second = Worker(kafka, unique)
    try:
        second.alerts.partitions_assigned([P0])
        replay = [specimen(o) for o in range(7)]  # from the last committed offset: 0
        assert second.batch([*replay, specimen(7)]) == ["s-7"]
        assert second.alerts.skipped_replays == 5 and second.alerts.suppressed == 2
        assert second.alerts.engine.instruments() == {"otolith-scanner-01"}
        second.alerts.partitions_revoked([P0])
        assert second.alerts.owned == set()
        assert second.alerts.engine.instruments() == set()  # forgotten with its partition
    finally:
        second.close()


def test_snapshots_wait_their_interval_unless_forced(kafka, unique):
    worker = Worker(kafka, unique, interval_s=3600)
    try:
        worker.alerts.partitions_assigned([P0])
        assert worker.batch([specimen(0)]) == ["s-0"]  # the first one is due at once
        worker.alerts.evaluate([specimen(1, flagged=False)])
        assert not worker.alerts.checkpoint()  # not due: the batch's offsets wait
        assert worker.alerts.checkpoint(force=True)  # stopping
        assert worker.alerts.checkpoint()  # nothing changed since
    finally:
        worker.close()
