"""Building the pipeline's collaborators from settings, and closing them again.

The pipeline loop gets finished objects; everything that reads settings, opens files or
connects to servers is here, so a bad setting fails before the first poll.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass

import cv2
from threadpoolctl import threadpool_limits

from seawatch.alerts.engine import AlertEngine
from seawatch.alerts.outputs import AlertOutputs, Webhook
from seawatch.alerts.partitioned import PartitionedAlerts
from seawatch.config import Settings
from seawatch.health.checks import Heartbeat
from seawatch.inference.router import TaskRouter
from seawatch.ingest.dead_letters import DeadLetterQueue
from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from seawatch.ingest.keyed_topics import KeyedTopics
from seawatch.ingest.prepare import FramePreparer
from seawatch.ingest.topic_keeper import TopicKeeper
from seawatch.lanes import Lane, lane_settings
from seawatch.model_swap import ModelSwapper
from seawatch.pipeline import Pipeline
from seawatch.pipeline_metrics import PipelineMetrics
from seawatch.registry import load_heads
from seawatch.stats import PipelineStats
from seawatch.storage.crop_store import CropStore
from seawatch.storage.evidence import EvidenceStore
from seawatch.storage.influx_outbox import OutboxSink
from seawatch.storage.local_store import LocalStore, reviewed_crops
from seawatch.storage.sink import LineSink, Sink

log = logging.getLogger(__name__)
COMPACTED = {"cleanup.policy": "compact"}


@dataclass
class Daemon:
    """A built pipeline and the resources it owns; close() releases them in order."""

    pipeline: Pipeline
    publisher: Publisher
    sinks: list[Sink]
    state_log: KeyedTopics | None = None  # the alert state's reader

    def run(self, should_stop=None) -> PipelineStats:
        return self.pipeline.run(should_stop)

    def stop(self) -> None:
        self.pipeline.stop()

    def close(self) -> None:
        """Close the consumer, the sinks (flushing them), the DLQ producer and the backend."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.pipeline.router.close)
            if self.pipeline.models is not None:
                stack.callback(self.pipeline.models.close)
            stack.callback(self.publisher.close)
            for sink in self.sinks:
                stack.callback(sink.close)
            if self.pipeline.crops is not None:
                stack.callback(self.pipeline.crops.close)
            stack.callback(self.pipeline.preparer.close)
            if self.state_log is not None:
                stack.callback(self.state_log.close)
            stack.callback(self.pipeline.source.close)
            stack.callback(self.pipeline.alert_outputs.close)  # first: webhooks deliver the rest


def build_sinks(settings: Settings) -> list[Sink]:
    """The sinks the settings ask for: the local store and/or InfluxDB (through the outbox)."""
    sinks: list[Sink] = []
    storage = settings.storage
    if storage.local.enabled:
        sinks.append(LocalStore(storage.local.path))
    if storage.influx.url:
        sinks.append(OutboxSink(storage.influx, storage.outbox, storage.outbox_path))
    return sinks


def build_crop_store(settings: Settings) -> CropStore | None:
    """The crop store the review station reads, when the settings keep crops; its retention
    never drops the crops of reviewed objects."""
    local = settings.storage.local
    if not local.keeps_crops:
        return None
    return CropStore(
        local.crops_path,
        max_bytes=local.crops.max_bytes,
        max_age_s=local.crops.max_age_days * 86_400,
        keep=functools.partial(reviewed_crops, local.path),
    )


def build_router(settings: Settings) -> TaskRouter:
    """The head of every enabled task (from the registry), behind one router; and numpy's
    BLAS limited to ``inference.blas_threads`` threads for this process."""
    # The daemon's matrix products are small (gallery matching: 64 x 128 by 128 x 500); a
    # second BLAS thread only spins against the model's thread for the core (design notes).
    threadpool_limits(settings.inference.blas_threads, user_api="blas")
    return TaskRouter(load_heads(settings))


def build_daemon(
    settings: Settings,
    stats: PipelineStats | None = None,
    *,
    worker: int | None = None,
    heartbeat: Heartbeat | None = None,
    lane: Lane | None = None,
) -> Daemon:
    """Load the models, connect to Kafka and the stores, and wire the pipeline (``worker``:
    this process's index under ``run --workers``, for its metrics; ``heartbeat``: beaten
    by the loop, for liveness; ``lane``: serve this lane only, in its consumer group)."""
    stats = stats or PipelineStats()
    if lane is not None:
        settings = lane_settings(settings, lane)
    router = build_router(settings)
    kafka = settings.kafka
    alerting = settings.alerts
    alert_topics = [alerting.topic] if alerting.enabled and alerting.topic else []
    state_topic = alerting.state_topic if alerting.enabled else None
    keeper = None
    if kafka.create_topics:
        topics = [*kafka.topics, kafka.dlq_topic, *alert_topics]

        def create() -> list[str]:
            created = ensure_topics(kafka, topics, kafka.partitions)
            if state_topic:  # one partition, compacted: the newest snapshot per key is kept
                created += ensure_topics(kafka, [state_topic], 1, COMPACTED)
            return created

        created = create()
        if created:
            log.info("topics_created topics=%s partitions=%d", ",".join(created), kafka.partitions)
        keeper = TopicKeeper(create)
    sinks = build_sinks(settings)
    publisher = Publisher(kafka)
    source = FrameSource(kafka, group_id=lane.group_id if lane is not None else None)
    outputs = AlertOutputs(
        influx=next((s for s in sinks if isinstance(s, LineSink)), None),
        publisher=publisher,
        topic=alerting.topic,
        webhooks=[Webhook(w) for w in alerting.webhooks] if alerting.enabled else [],
    )
    alerts = None
    state_log = None
    if alerting.enabled:
        state_log = KeyedTopics(kafka, publisher) if state_topic else None
        alerts = PartitionedAlerts(
            AlertEngine(alerting.rules),
            group_id=kafka.group_id,
            log_=state_log,
            state_topic=state_topic,
            alerts_topic=alerting.topic,
            sent_positions=outputs.sent_positions,
            interval_s=alerting.state_interval_s,
        )
        source.listen(alerts)  # judged on the partitions this worker owns
    # Small images on a loop thread: OpenCV's pool costs more than it gives (measured on this
    # 2-core VM: an opening of a 1280 x 960 frame 0.24 ms on one thread, 0.51 ms on two).
    cv2.setNumThreads(settings.ingest.opencv_threads)
    swapper = None
    if any(t.model_store is not None for t in settings.enabled_tasks().values()):
        depth = settings.inference.max_batches_in_flight
        swapper = ModelSwapper(settings, router, depth=depth)
    pipeline = Pipeline(
        source,
        FramePreparer(settings.ingest, router.heads),
        router,
        sinks,
        DeadLetterQueue(publisher, kafka.dlq_topic),
        evidence=EvidenceStore(settings.storage.local.evidence_root),
        crops=build_crop_store(settings),
        max_frames_per_batch=kafka.max_poll_records,
        max_wait_ms=settings.inference.max_wait_ms,
        stats=stats,
        depth=settings.inference.max_batches_in_flight,
        poll_every_s=kafka.max_poll_interval_ms / 2000,  # half the group's limit
        alerts=alerts,
        alert_outputs=outputs,
        tick_s=alerting.tick_s,
        on_idle=keeper.check if keeper is not None else None,
        heartbeat=heartbeat,
        models=swapper,
        metrics=PipelineMetrics(
            stats,
            group_id=lane.group_id if lane is not None else kafka.group_id,
            interval_s=settings.storage.metrics_interval_s,
            worker=worker,
        ),
    )
    log.info(
        "daemon_ready lane=%s models=%s backend_setting=%s threads=%s sinks=%s topics=%s",
        lane.name if lane is not None else "-",
        ",".join(f"{t}:{c.name}@{c.release}" for t, c in router.cards.items()),
        settings.inference.backend,
        ",".join(f"{t}:{settings.for_task(t).inference.threads}" for t in settings.enabled_tasks()),
        ",".join(s.name for s in sinks),
        ",".join(kafka.topics),
    )
    return Daemon(pipeline=pipeline, publisher=publisher, sinks=sinks, state_log=state_log)


__all__ = ["Daemon", "build_crop_store", "build_daemon", "build_router", "build_sinks"]
