"""`/metrics`: the running pipeline's counters in Prometheus' text format.

A collector reads :class:`~seawatch.stats.PipelineStats` and the pipeline's cached gauges at
scrape time, so the pipeline does no work per scrape and never touches the registry. The
latency histogram is fed at scrape time from the stats' latency window (the last 100,000
frames): scrapes must come more often than that window fills (about 4 minutes at 440
frames/s; Prometheus scrapes every 15-60 s), or the oldest frames go uncounted in it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from seawatch import __version__
from seawatch.stats import PipelineStats

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _LatencyHistogram:
    """Cumulative buckets of end-to-end latency, fed from the stats' latency window."""

    def __init__(self, stats: PipelineStats) -> None:
        self.stats = stats
        self._seen = 0
        self._counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last one: +Inf
        self._sum_s = 0.0
        self._lock = threading.Lock()

    def family(self) -> HistogramMetricFamily:
        with self._lock:
            latencies_ms, self._seen = self.stats.latencies_since(self._seen)
            for ms in latencies_ms:
                seconds = ms / 1000
                self._sum_s += seconds
                self._counts[_bucket(seconds)] += 1
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), self._counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            total = self._sum_s
        family = HistogramMetricFamily(
            "seawatch_latency_seconds",
            "End-to-end latency of stored frames: broker timestamp to durable and committed",
        )
        family.add_metric([], buckets, total)
        return family


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BUCKETS_S):
        if seconds <= bound:
            return i
    return len(LATENCY_BUCKETS_S)


class PipelineCollector(Collector):
    """Every seawatch metric, read from the stats and from ``pipeline()`` (None until the
    pipeline is built) and ``ready()`` at scrape time."""

    def __init__(
        self,
        stats: PipelineStats,
        pipeline: Callable[[], object | None],
        ready: Callable[[], bool],
        loop_age_s: Callable[[], float],
    ) -> None:
        self.stats = stats
        self._pipeline = pipeline
        self._ready = ready
        self._loop_age_s = loop_age_s
        self._latency = _LatencyHistogram(stats)

    def collect(self):
        s = self.stats
        with s._lock:
            frames, objects = s.frames, s.objects
            dead = dict(s.dead_letters_by_stage)
            taxa = dict(s.taxa)
            stages = dict(s.stage_seconds)
            infer_s = s.infer_ms_total / 1000
        yield _counter("seawatch_frames", "Frames stored (durable, offsets committed)", frames)
        yield _counter("seawatch_objects", "Objects found in stored frames", objects)
        yield _labelled_counter(
            "seawatch_objects_by_taxon", "Objects per predicted taxon", "taxon", taxa
        )
        yield _labelled_counter(
            "seawatch_dead_letters",
            "Messages sent to the dead-letter topic, by stage",
            "stage",
            dead,
        )
        yield _labelled_counter(
            "seawatch_stage_seconds", "Wall time spent in each pipeline stage", "stage", stages
        )
        yield _counter("seawatch_inference_seconds", "Time the models took on batches", infer_s)
        yield self._latency.family()
        yield from self._pipeline_metrics()
        yield _gauge("seawatch_ready", "1 when /healthz answers ready", float(self._ready()))
        yield _gauge(
            "seawatch_loop_age_seconds",
            "Seconds since the pipeline loop last turned",
            self._loop_age_s(),
        )
        info = GaugeMetricFamily("seawatch_build_info", "seawatch version", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info

    def _pipeline_metrics(self):
        pipeline = self._pipeline()
        if pipeline is None:
            return
        lag = getattr(pipeline, "last_lag", None)
        if lag is not None:
            yield _gauge(
                "seawatch_consumer_lag_messages",
                "Messages between the consumer's positions and the partition ends (at the "
                "last metrics interval)",
                lag,
            )
        backlog = sum(getattr(sink, "backlog", 0) for sink in pipeline.sinks)
        yield _gauge(
            "seawatch_outbox_backlog_lines", "Lines waiting in the outbox for InfluxDB", backlog
        )
        yield _gauge(
            "seawatch_backpressure_paused",
            "1 while consumption is paused (outbox full)",
            float(pipeline.paused),
        )
        yield _counter(
            "seawatch_commit_failures",
            "Offset commits that failed (batch replayed later)",
            pipeline.source.commit_failures,
        )
        outputs = pipeline.alert_outputs
        alerts = CounterMetricFamily(
            "seawatch_alerts", "Alerts raised, by rule and severity", labels=["rule", "severity"]
        )
        for (rule, severity), count in sorted(outputs.emitted_by.items()):
            alerts.add_metric([rule, severity], count)
        yield alerts


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled_counter(name: str, doc: str, label: str, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def pipeline_registry(collector: PipelineCollector) -> CollectorRegistry:
    """A registry of its own with ``collector`` and the process metrics (not the default
    registry, so two daemons in one test process do not clash)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)  # resident memory, CPU seconds, open files
    return registry


__all__ = ["LATENCY_BUCKETS_S", "PipelineCollector", "pipeline_registry"]
