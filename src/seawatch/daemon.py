"""Building the pipeline's collaborators from settings, and closing them again.

The pipeline loop gets finished objects; everything that reads settings, opens files or
connects to servers is here, so a bad setting fails before the first poll.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
from threadpoolctl import threadpool_limits

from seawatch.alerts.engine import AlertEngine
from seawatch.alerts.outputs import AlertOutputs, Webhook
from seawatch.config import Settings, resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.health.checks import Heartbeat
from seawatch.inference.classifier import PlanktonClassifier
from seawatch.inference.factory import open_backend
from seawatch.inference.router import TaskRouter
from seawatch.ingest.dead_letters import DeadLetterQueue
from seawatch.ingest.kafka_io import FrameSource, Publisher, ensure_topics
from seawatch.ingest.prepare import FramePreparer
from seawatch.ingest.topic_keeper import TopicKeeper
from seawatch.pipeline import Pipeline
from seawatch.pipeline_metrics import PipelineMetrics
from seawatch.stats import PipelineStats
from seawatch.storage.evidence import EvidenceStore
from seawatch.storage.influx_outbox import OutboxSink
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
            stack.callback(self.pipeline.router.close)
            stack.callback(self.publisher.close)
            for sink in self.sinks:
                stack.callback(sink.close)
            stack.callback(self.pipeline.preparer.close)
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


def _load(settings: Settings, model_dir: Path):
    model_dir = resolve_model_dir(model_dir)
    card = load_card(model_dir)
    inference = settings.inference
    backend = open_backend(
        inference.backend,
        model_dir / ONNX_FILE,
        threads=inference.threads,
        max_batch=inference.max_batch,
    )
    return model_dir, card, backend


def build_router(settings: Settings) -> TaskRouter:
    """Load the model of every served task (a task with no model dir is not served), and
    limit numpy's BLAS to ``inference.blas_threads`` threads for this process."""
    inference = settings.inference
    # The daemon's matrix products are small (gallery matching: 64 x 128 by 128 x 500); a
    # second BLAS thread only spins against the model's thread for the core: measured on
    # this 2-core VM, 16 ms instead of 0.13 ms per gallery match while a model runs.
    threadpool_limits(inference.blas_threads, user_api="blas")
    _, card, backend = _load(settings, inference.model_dir)
    plankton = PlanktonClassifier(
        backend, card, max_batch=inference.max_batch, top_k=inference.top_k
    )
    otolith = fish = None
    gallery_path = None
    if inference.otolith_model_dir is not None:
        from seawatch.inference.otolith import OtolithDetector

        _, card, backend = _load(settings, inference.otolith_model_dir)
        otolith = OtolithDetector(backend, card, max_batch=inference.otolith_batch)
    if inference.fish_model_dir is not None:
        from seawatch.inference.fish import FishIdentifier
        from seawatch.inference.gallery import Gallery

        model_dir, card, backend = _load(settings, inference.fish_model_dir)
        gallery_path = working_gallery(settings, model_dir / card.files.get("gallery", ""))
        fish = FishIdentifier(
            backend, card, Gallery.load(gallery_path), max_batch=inference.max_batch
        )
    return TaskRouter(
        plankton,
        otolith,
        fish,
        enrol_new_fish=inference.fish_enrol_new,
        gallery_path=gallery_path,
    )


def working_gallery(settings: Settings, model_gallery: Path) -> Path:
    """The daemon's own gallery file, seeded from the model's gallery the first time.

    The model's gallery (known individuals) is never written to; enrolments of new
    individuals go to the working copy beside the local store.
    """
    path = settings.storage.local.fish_gallery_path
    if not path.exists():
        if not model_gallery.is_file():
            msg = f"fish model has no gallery file at {model_gallery}; retrain or enrol one"
            raise ConfigError(msg)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_gallery, path)
    return path


def build_daemon(
    settings: Settings,
    stats: PipelineStats | None = None,
    *,
    worker: int | None = None,
    heartbeat: Heartbeat | None = None,
) -> Daemon:
    """Load the models, connect to Kafka and the stores, and wire the pipeline (``worker``:
    this process's index under ``run --workers``, for its metrics; ``heartbeat``: beaten
    by the loop, for liveness)."""
    stats = stats or PipelineStats()
    router = build_router(settings)
    card = router.plankton.card
    kafka = settings.kafka
    alerting = settings.alerts
    alert_topics = [alerting.topic] if alerting.enabled and alerting.topic else []
    keeper = None
    if kafka.create_topics:
        topics = [*kafka.topics, kafka.dlq_topic, *alert_topics]

        def create() -> list[str]:
            return ensure_topics(kafka, topics, kafka.partitions)

        created = create()
        if created:
            log.info("topics_created topics=%s partitions=%d", ",".join(created), kafka.partitions)
        keeper = TopicKeeper(create)
    sinks = build_sinks(settings)
    publisher = Publisher(kafka)
    source = FrameSource(kafka)
    outputs = AlertOutputs(
        influx=next((s for s in sinks if isinstance(s, OutboxSink)), None),
        publisher=publisher,
        topic=alerting.topic,
        webhooks=[Webhook(w) for w in alerting.webhooks] if alerting.enabled else [],
    )
    # Small images on a loop thread: OpenCV's pool costs more than it gives (measured on this
    # 2-core VM: an opening of a 1280 x 960 frame 0.24 ms on one thread, 0.51 ms on two).
    cv2.setNumThreads(settings.ingest.opencv_threads)
    pipeline = Pipeline(
        source,
        FramePreparer(
            settings.ingest, input_size=card.input.size, whole_frame=router.whole_frame_inputs()
        ),
        router,
        sinks,
        DeadLetterQueue(publisher, kafka.dlq_topic),
        evidence=EvidenceStore(settings.storage.local.evidence_root),
        max_frames_per_batch=kafka.max_poll_records,
        max_wait_ms=settings.inference.max_wait_ms,
        stats=stats,
        depth=settings.inference.max_batches_in_flight,
        poll_every_s=kafka.max_poll_interval_ms / 2000,  # half the group's limit
        alerts=AlertEngine(alerting.rules) if alerting.enabled else None,
        alert_outputs=outputs,
        tick_s=alerting.tick_s,
        on_idle=keeper.check if keeper is not None else None,
        heartbeat=heartbeat,
        metrics=PipelineMetrics(
            stats,
            group_id=kafka.group_id,
            interval_s=settings.storage.metrics_interval_s,
            worker=worker,
        ),
    )
    log.info(
        "daemon_ready models=%s backend_setting=%s threads=%d sinks=%s topics=%s",
        ",".join(f"{t}:{c.name}@{c.version}" for t, c in router.cards.items()),
        settings.inference.backend,
        settings.inference.threads,
        ",".join(s.name for s in sinks),
        ",".join(kafka.topics),
    )
    return Daemon(pipeline=pipeline, publisher=publisher, sinks=sinks)


__all__ = ["Daemon", "build_daemon", "build_router", "build_sinks", "working_gallery"]
