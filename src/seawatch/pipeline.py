"""The daemon loop: poll -> prepare, stage -> infer (by task) -> finish -> evidence, records
-> sinks -> commit.

Three stages overlap on two threads: while batch n is inferred on the inference thread,
the loop polls, prepares and stages (stacks the model inputs of) the next ones (up to
``depth`` batches in flight), and finishes (top-k, thresholds, gallery matching), stores and
commits the batches the inference thread has finished, in order. The inference thread runs
the backends and nothing else, so the model, the slowest stage, never waits on Python work.
With ``depth`` 0 the loop infers each batch itself: one thread per worker, for scale-out by
processes (``seawatch run --workers N`` on N cores). Offsets of a batch
are committed only after every sink has flushed it and the dead-letter queue has
acknowledged its bad messages, so a crash at any point loses nothing (replays overwrite
their own records).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from seawatch.alerts.outputs import AlertOutputs
from seawatch.contracts.errors import BrokerError, FrameError
from seawatch.contracts.task import PreparedFrame, build_record
from seawatch.health.checks import Heartbeat
from seawatch.inference.router import TaskRouter
from seawatch.ingest.dead_letters import DeadLetterQueue
from seawatch.ingest.kafka_io import FrameSource
from seawatch.ingest.prepare import FramePreparer, Rejected
from seawatch.pipeline_metrics import PipelineMetrics
from seawatch.pipeline_parts import Alerting, Batch, ModelUpdates, RecordView
from seawatch.stats import PipelineStats
from seawatch.storage.crop_store import CropStore
from seawatch.storage.evidence import EvidenceStore
from seawatch.storage.sink import LineSink, Sink

log = logging.getLogger(__name__)
IDLE_POLL_MS = 200  # how long a poll waits when no message comes and nothing is in flight


class Pipeline:
    """Wires the collaborators built by the caller; owns no configuration parsing."""

    def __init__(
        self,
        source: FrameSource,
        preparer: FramePreparer,
        router: TaskRouter,
        sinks: list[Sink],
        dlq: DeadLetterQueue,
        *,
        evidence: EvidenceStore | None = None,
        crops: CropStore | None = None,
        max_frames_per_batch: int,
        max_wait_ms: int,
        stats: PipelineStats | None = None,
        depth: int = 8,
        alerts: Alerting | None = None,
        alert_outputs: AlertOutputs | None = None,
        tick_s: float = 1.0,
        metrics: PipelineMetrics | None = None,
        on_idle: Callable[[], object] | None = None,
        heartbeat: Heartbeat | None = None,
        models: ModelUpdates | None = None,
        poll_every_s: float | None = None,
    ) -> None:
        if depth < 0:
            msg = f"depth must be at least 0 (batches in flight; 0: infer inline), got {depth}"
            raise ValueError(msg)
        self.source = source
        self.preparer = preparer
        self.router = router
        self.evidence = evidence
        self.crops = crops
        self.sinks = sinks
        self.dlq = dlq
        self.max_frames = max_frames_per_batch
        self.max_wait_ms = max_wait_ms
        self.stats = stats or PipelineStats()
        self.depth = depth
        self.alerts = alerts
        self.alert_outputs = alert_outputs or AlertOutputs()
        self.tick_s = tick_s
        self.metrics = metrics
        self.on_idle = on_idle  # e.g. recreate topics a restarted broker lost
        self.models = models  # live model swaps, between batches
        self.heartbeat = heartbeat or Heartbeat()  # beaten every turn of the loop (liveness)
        # the longest the loop drains finished batches before it polls again (the consumer
        # group drops a member that does not poll within max_poll_interval_ms)
        self.poll_every_s = float("inf") if poll_every_s is None else poll_every_s
        self.last_lag: int | None = None  # consumer lag at the last metrics interval
        self._next_tick = 0.0
        self._stop = threading.Event()
        self._paused = False
        self._paused_since = 0.0
        self._last_poll = time.monotonic()
        self._holding = False  # offsets held in the source until the alert state is written
        self._infer_thread = ThreadPoolExecutor(1, thread_name_prefix="infer") if depth else None
        # the crop store's writes (and their fsync) beside the loop, one batch after another
        self._crop_thread = (
            ThreadPoolExecutor(1, thread_name_prefix="crops") if crops is not None else None
        )

    @property
    def paused(self) -> bool:
        """Whether consumption is paused for backpressure (the outbox is full)."""
        return self._paused

    def stop(self) -> None:
        """Ask the loop to finish the batches in flight, commit and return."""
        self._stop.set()

    def run(self, should_stop: Callable[[PipelineStats], bool] | None = None) -> PipelineStats:
        """Run until :meth:`stop` is called or ``should_stop(stats)`` says so."""
        in_flight: deque[Future[Batch]] = deque()
        try:
            while True:
                self.heartbeat.beat()
                stopping = self._stop.is_set() or (
                    should_stop is not None and should_stop(self.stats)
                )
                self._tick()
                # With batches in flight, an empty poll returns at once: the loop then waits on
                # the oldest batch and stores it, instead of holding finished results through
                # an idle fetch (Tansu holds each one for fetch_max_wait_ms).
                idle_ms = 0 if in_flight else IDLE_POLL_MS
                batch = None if stopping or self._held_back() else self._poll_and_prepare(idle_ms)
                polled = time.monotonic()
                if not stopping:
                    self._last_poll = polled
                if batch is not None:
                    in_flight.append(self._submit(batch))
                elif not stopping and self.on_idle is not None:
                    self.on_idle()
                while in_flight and self._store_oldest_now(in_flight, batch, stopping, polled):
                    self._store_and_commit(self._wait(in_flight.popleft()))
                if stopping and not in_flight:
                    self._commit_held()
                    self._write_metrics()  # the last interval too
                    break
        finally:
            for future in in_flight:
                future.cancel()
            if self._infer_thread is not None:
                self._infer_thread.shutdown(wait=True)
            if self._crop_thread is not None:
                self._crop_thread.shutdown(wait=True)
        return self.stats

    def _store_oldest_now(
        self, in_flight: deque[Future[Batch]], polled: Batch | None, stopping: bool, at: float
    ) -> bool:
        """The drain rule: store the oldest batch in flight now (waiting for it if need be)?

        Finished batches are stored in order. The loop blocks on the oldest only when the
        window is full or there is nothing else to do (the poll was idle, or the loop is
        stopping); but it polls again within ``poll_every_s``, or a slow model (a window of
        batches taking longer than max_poll_interval_ms) would get this member dropped from
        its group.
        """
        if in_flight[0].done() or len(in_flight) > self.depth:
            return True
        nothing_else_to_do = polled is None
        return nothing_else_to_do and (stopping or time.monotonic() - at < self.poll_every_s)

    def _submit(self, batch: Batch) -> Future[Batch]:
        """Hand ``batch`` to the inference thread, or (``depth`` 0) infer it here and now;
        its kept crops to the crop thread."""
        batch.crops_written = self._write_crops(batch.frames, before_finish=True)
        if self._infer_thread is not None:
            return self._infer_thread.submit(self._infer, batch)
        done: Future[Batch] = Future()
        try:
            done.set_result(self._infer(batch))
        except BaseException as exc:  # raised by _wait, as the thread's failures are
            done.set_exception(exc)
        return done

    def _write_crops(self, frames: list[PreparedFrame], before_finish: bool) -> Future | None:
        """Start writing the frames' crops on the crop thread, so the write and its fsync
        overlap the loop: before the finish, those already made (a frame whose backend then
        fails leaves an unnamed crop; retention drops it); after it, a cut frame's."""
        views = [v for p in frames if (p.pending is None) == before_finish for v in p.views]
        if self._crop_thread is None or self.crops is None or not views:
            return None
        return self._crop_thread.submit(self.crops.put, views)

    def _tick(self) -> None:
        """Every turn: a promoted model swapped in (between batches); every ``tick_s``: the
        time-based alert rules (an instrument gone silent); every metrics interval: the
        ``pipeline`` point to the sinks that take lines."""
        if self.models is not None:
            self.models.poll()
        if self.metrics is not None and self.metrics.due():
            self._write_metrics()
        now = time.monotonic()
        if self.alerts is None or now < self._next_tick:
            return
        self._next_tick = now + self.tick_s
        self.alert_outputs.emit(self.alerts.tick(), flush=True)

    def _write_metrics(self) -> None:
        if self.metrics is None:
            return
        takers = [s for s in self.sinks if isinstance(s, LineSink)]
        backlog = sum(s.backlog for s in takers)
        self.last_lag = self.source.lag()  # here, on the loop's thread: the consumer is not
        point = self.metrics.point(lag=self.last_lag, backlog=backlog)  # thread-safe
        for sink in takers:
            sink.add_lines([point])
            sink.flush()

    def _held_back(self) -> bool:
        """Backpressure: while a sink says it is saturated (the outbox is full), pause the
        partitions and poll nothing (the poll keeps the group membership); resume after."""
        full = any(sink.saturated() for sink in self.sinks)
        if full:
            self._paused_poll(IDLE_POLL_MS)
            if not self._paused:
                log.warning("backpressure_on reason='outbox full' effect='consumption paused'")
                self._paused_since = time.perf_counter()
        elif self._paused:
            self.source.resume()
            self.stats.timed("backpressure", time.perf_counter() - self._paused_since)
            log.info("backpressure_off paused_s=%.1f", time.perf_counter() - self._paused_since)
        self._paused = full
        return full

    def _wait(self, in_flight: Future[Batch]) -> Batch:
        """The batch's result. While it is not ready, poll with the partitions paused (nothing
        is fetched) at least every ``poll_every_s``: a batch that takes longer than the
        group's ``max_poll_interval_ms`` (64 otolith specimens at eight views each on 2 cores:
        about 7 s) must not get this member dropped, its commits refused and its work replayed.
        """
        started = time.perf_counter()
        while True:
            left = self._last_poll + self.poll_every_s - time.monotonic()
            try:
                batch = in_flight.result(timeout=max(0.0, left) if left != float("inf") else None)
                break
            except FutureTimeout:
                self._keep_alive()
        self.stats.timed("wait_infer", time.perf_counter() - started)
        return batch

    def _keep_alive(self) -> None:
        """Poll without fetching while a slow batch is awaited: the consumer group sees this
        member alive. Resumes afterwards unless backpressure holds consumption."""
        self._paused_poll(0)
        self.stats.keep_alive_polls += 1
        if not self._paused:
            self.source.resume()

    def _paused_poll(self, idle_ms: int) -> None:
        """Pause every assigned partition (every time: a rebalance may have assigned new
        ones) and poll: the poll heartbeats and, paused, returns nothing."""
        self.source.pause()
        self.source.poll_batch(1, 0, idle_ms=idle_ms)
        self._last_poll = time.monotonic()

    def _poll_and_prepare(self, idle_ms: int = IDLE_POLL_MS) -> Batch | None:
        started = time.perf_counter()
        records = self.source.poll_batch(self.max_frames, self.max_wait_ms, idle_ms)
        polled_at = time.perf_counter()
        if not records:
            return None
        self.stats.timed("poll", polled_at - started)
        frames = []
        for item in self.preparer.prepare_many(records):
            if isinstance(item, Rejected):
                self._dead_letter(item.record, item.error)
            else:
                frames.append(item)
        prepared_at = time.perf_counter()
        self.stats.timed("prepare", prepared_at - polled_at)
        work = self.router.stage(frames)
        self.stats.timed("stage", time.perf_counter() - prepared_at)
        return Batch(records=records, frames=frames, polled_at=polled_at, work=work)

    def _infer(self, batch: Batch) -> Batch:
        """The inference thread's part: the backends, nothing else."""
        started = time.perf_counter()
        self.router.infer(batch.work)
        infer_ms = (time.perf_counter() - started) * 1000
        self.stats.inferred(infer_ms)
        self.stats.timed("infer", infer_ms / 1000)
        return batch

    def _finish(self, batch: Batch) -> None:
        """Outputs -> records (on the loop thread); frames whose backend failed to the DLQ."""
        started = time.perf_counter()
        routed = self.router.finish(batch.frames, batch.work)
        batch.work = []  # the stacked inputs are no longer needed
        for position, error in routed.failed:
            # A failed backend call fails each of its frames, to the DLQ with the reason.
            self._dead_letter(RecordView(batch.frames[position]), FrameError("infer", str(error)))
        now_ms = time.time() * 1000
        kept = []
        for position, prepared in enumerate(batch.frames):
            if position not in routed.results:
                continue
            result, card = routed.results[position]
            kept.append(prepared)
            batch.evidence.extend(result.evidence)
            batch.results.append(build_record(prepared, result, card, now_ms))
        batch.frames = kept
        self.stats.timed("finish", time.perf_counter() - started)

    def _store_and_commit(self, batch: Batch) -> None:
        self._finish(batch)
        started = time.perf_counter()
        if self.evidence is not None:
            for relative, image in batch.evidence:  # files first: records point at them
                self.evidence.write(relative, image)
        late = self._write_crops(batch.frames, before_finish=False)
        for written in (batch.crops_written, late):  # durable before the records naming them
            if written is not None:
                written.result()
        for sink in self.sinks:
            sink.add(batch.results)
        if self.alerts is not None:  # durable with the batch: same flushes, before the commit
            self.alert_outputs.emit(self.alerts.evaluate(batch.results))
        for sink in self.sinks:
            sink.flush()
        self.alert_outputs.flush_kafka()
        # the alert state that covers this batch, after its alerts and before its offsets
        state_saved = self.alerts is None or self.alerts.checkpoint()
        stored = time.perf_counter()
        try:
            self.dlq.flush(should_stop=self._stop.is_set)
        except BrokerError as exc:  # stopping while the broker refuses the dead letters
            log.error("batch_not_committed reason=%r effect='replayed at the next start'", exc)
            return
        if state_saved:
            self.source.commit(batch.records)  # and those held before
            self._holding = False
        else:  # committed with a later batch, or at the stop
            self.source.hold(batch.records)
            self._holding = True
        self.stats.timed("store", stored - started)
        self.stats.timed("commit", time.perf_counter() - stored)
        self.stats.stored(
            batch.results,
            batch.polled_at,
            [p.frame.broker_ts_ms for p in batch.frames],
            [p.frame.meta.task for p in batch.frames],
        )
        if self.models is not None:
            self.models.batch_stored()
        log.debug(
            "batch messages=%d frames=%d objects=%d dlq_total=%d",
            len(batch.records),
            len(batch.results),
            sum(len(r.objects) for r in batch.results),
            self.stats.dead_letters,
        )

    def _commit_held(self) -> None:
        """Stopping: write the alert state now and commit the offsets held for it."""
        if self._holding and (self.alerts is None or self.alerts.checkpoint(force=True)):
            self.source.commit([])
            self._holding = False

    def _dead_letter(self, record, error: FrameError) -> None:
        self.dlq.send(record, error.stage, str(error))
        self.stats.rejected(error.stage, error.field)
        log.warning(
            "dead_letter stage=%s field=%s reason=%r", error.stage, error.field, error.reason
        )


__all__ = ["Batch", "Pipeline"]
