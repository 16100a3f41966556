"""Building the pipeline's collaborators from settings, and closing them again.

The pipeline loop gets finished objects; everything that reads settings, opens files or
connects to servers is here, so a bad setting fails before the first poll.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from seawatch.config import Settings, resolve_model_dir
from seawatch.inference.backend import open_backend
from seawatch.inference.classifier import PlanktonClassifier
from seawatch.ingest.kafka_io import DeadLetterQueue, FrameSource, Publisher, ensure_topics
from seawatch.ingest.prepare import FramePreparer
from seawatch.models.card import ONNX_FILE, load_card
from seawatch.pipeline import Pipeline
from seawatch.stats import PipelineStats
from seawatch.storage.local_store import LocalStore
from seawatch.storage.sink import Sink

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    """A built pipeline and the resources it owns; close() releases them in order."""

    pipeline: Pipeline
    publisher: Publisher
    sinks: list[Sink]

    def run(self, should_stop=None) -> PipelineStats:
        return self.pipeline.run(should_stop)

    def stop(self) -> None:
        self.pipeline.stop()

    def close(self) -> None:
        """Close the consumer, the sinks (flushing them), the DLQ producer and the backend."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.pipeline.classifier.backend.close)
            stack.callback(self.publisher.close)
            for sink in self.sinks:
                stack.callback(sink.close)
            stack.callback(self.pipeline.preparer.close)
            stack.callback(self.pipeline.source.close)


def build_sinks(settings: Settings) -> list[Sink]:
    """The sinks the settings ask for: the local store and/or InfluxDB."""
    sinks: list[Sink] = []
    if settings.storage.local.enabled:
        sinks.append(LocalStore(settings.storage.local.path))
    if settings.storage.influx.url:
        from seawatch.storage.influx_writer import InfluxWriter

        sinks.append(InfluxWriter(settings.storage.influx))
    return sinks


def build_daemon(settings: Settings, stats: PipelineStats | None = None) -> Daemon:
    """Load the model, connect to Kafka and the stores, and wire the pipeline."""
    model_dir = resolve_model_dir(settings.inference.model_dir)
    card = load_card(model_dir)
    backend = open_backend(
        settings.inference.backend, model_dir / ONNX_FILE, threads=settings.inference.threads
    )
    classifier = PlanktonClassifier(
        backend, card, max_batch=settings.inference.max_batch, top_k=settings.inference.top_k
    )
    kafka = settings.kafka
    if kafka.create_topics:
        created = ensure_topics(
            kafka.bootstrap_servers, [*kafka.topics, kafka.dlq_topic], kafka.partitions
        )
        if created:
            log.info("topics_created topics=%s partitions=%d", ",".join(created), kafka.partitions)
    sinks = build_sinks(settings)
    publisher = Publisher(kafka.bootstrap_servers, kafka.max_message_bytes)
    source = FrameSource(kafka)
    pipeline = Pipeline(
        source,
        FramePreparer(settings.ingest, input_size=card.input.size),
        classifier,
        sinks,
        DeadLetterQueue(publisher, kafka.dlq_topic),
        max_frames_per_batch=kafka.max_poll_records,
        max_wait_ms=settings.inference.max_wait_ms,
        stats=stats,
        depth=settings.inference.max_batches_in_flight,
    )
    log.info(
        "daemon_ready model=%s version=%s backend=%s threads=%d sinks=%s topics=%s",
        card.name,
        card.version,
        backend.name,
        settings.inference.threads,
        ",".join(s.name for s in sinks),
        ",".join(kafka.topics),
    )
    return Daemon(pipeline=pipeline, publisher=publisher, sinks=sinks)


__all__ = ["Daemon", "build_daemon", "build_sinks"]
