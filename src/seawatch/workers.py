"""``seawatch run --workers N``: N daemon processes per lane, each lane's in its consumer group.

With lanes (:mod:`seawatch.lanes`), each lane gets its own N workers (``run --lane L``),
numbered lane by lane (lane ``i``'s worker ``w`` is index ``i * N + w``): the index picks
the outbox file and the HTTP port, so every worker of every lane has its own. Kafka shares
the topics' partitions among the group's members, so N processes (each with its own model
session, decode and inference threads) use N cores without sharing a GIL.
Several hosts running the same group share the work the same way. The supervisor here
starts the workers, restarts one that dies (with a growing wait), and on SIGTERM or Ctrl-C
passes the signal on and waits for every worker to drain, commit and exit.

Each worker writes the shared local store (SQLite in WAL mode takes one writer at a time)
and an outbox file of its own (``<outbox>-w<i>.db``), so no two drainers send the same lines.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from seawatch.config import Settings
from seawatch.contracts.errors import ConfigError
from seawatch.health.checks import Heartbeat
from seawatch.health.systemd import SystemdNotifier
from seawatch.ingest.broker import die_with_parent

log = logging.getLogger(__name__)

STOP_GRACE_S = 12.0  # a worker drains within 10 s; then it is killed
# Workers join the group one after another (Tansu 0.6 was seen to leave members that joined
# an emptied group at the same moment without partitions).
STAGGER_S = 2.0
SUPERVISOR_STALL_S = 30.0  # the supervisor's loop turns every 0.2 s (or a restart's wait)
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def worker_outbox(outbox: Path, index: int) -> Path:
    """The outbox file of worker ``index``: ``x-outbox.db`` -> ``x-outbox-w1.db``."""
    return outbox.with_name(f"{outbox.stem}-w{index}{outbox.suffix}")


def check_partitions(settings: Settings, workers: int, partitions_of) -> None:
    """Refuse more workers than new topics get partitions; warn where existing topics have
    fewer (``partitions_of(topic)`` -> count or None): the extra workers would idle."""
    kafka = settings.kafka
    if kafka.create_topics and kafka.partitions < workers:
        msg = (
            f"--workers {workers} needs at least {workers} partitions per topic, but "
            f"kafka.partitions is {kafka.partitions}; set SEAWATCH_KAFKA__PARTITIONS={workers} "
            "(a partition is consumed by one worker at a time)"
        )
        raise ConfigError(msg)
    for topic in kafka.topics:
        count = partitions_of(topic)
        if count is not None and count < workers:
            log.warning(
                "partitions_fewer_than_workers topic=%s partitions=%d workers=%d effect='%d "
                "workers idle on it; add partitions to the topic'",
                topic,
                count,
                workers,
                workers - count,
            )


class Supervisor:
    """Starts ``workers`` copies of ``seawatch run`` per lane and keeps them running until
    stopped (``lanes``: the lanes' names; None: one consumer for every task, no ``--lane``)."""

    def __init__(
        self,
        workers: int,
        global_args: list[str],
        notifier: SystemdNotifier | None = None,
        lanes: list[str] | None = None,
    ) -> None:
        self.lanes: list[str | None] = list(lanes) if lanes else [None]
        self.workers = workers * len(self.lanes)
        self.per_lane = workers
        self.global_args = global_args
        self.processes: dict[int, subprocess.Popen] = {}
        self.restarts = 0
        self._stopping = False
        # Under systemd the supervisor is the main PID: it says READY=1 and feeds the
        # watchdog while its loop turns; the workers do not inherit the socket.
        self.notifier = notifier or SystemdNotifier()
        self.heartbeat = Heartbeat()
        self._env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARIABLES}

    def _start(self, index: int) -> None:
        command = [sys.executable, "-m", "seawatch", *self.global_args, "run"]
        lane = self.lanes[index // self.per_lane]
        self.processes[index] = subprocess.Popen(
            [*command, "--worker-index", str(index), *(["--lane", lane] if lane else [])],
            # a supervisor killed outright (SIGKILL, OOM) takes its workers with it: they get
            # SIGTERM, drain and commit, instead of running on as orphans
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
            env=self._env,
        )
        log.info(
            "worker_started index=%d pid=%d lane=%s", index, self.processes[index].pid, lane or "-"
        )

    def stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        """Pass the signal to every worker (they drain, commit and exit)."""
        self._stopping = True
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Run until stopped; the exit code: 0 when every worker stopped cleanly."""
        for index in range(self.workers):
            if index:
                time.sleep(STAGGER_S)
            self._start(index)
        self.notifier.notify("READY=1")
        self.notifier.start_watchdog(lambda: self.heartbeat.age_s() < SUPERVISOR_STALL_S)
        backoff: dict[int, float] = {}
        while not self._stopping:
            self.heartbeat.beat()
            for index, process in list(self.processes.items()):
                code = process.poll()
                if code is None or self._stopping:
                    continue
                wait = backoff.get(index, 0.5)
                log.error(
                    "worker_exited index=%d code=%d effect='restarted in %.1f s; its "
                    "uncommitted batches are replayed'",
                    index,
                    code,
                    wait,
                )
                time.sleep(wait)
                backoff[index] = min(30.0, wait * 2)
                self.restarts += 1
                if not self._stopping:
                    self._start(index)
            time.sleep(0.2)
        try:
            return self._wait_all()
        finally:
            self.notifier.stop()

    def _wait_all(self) -> int:
        self.notifier.notify("STOPPING=1")
        deadline = time.monotonic() + STOP_GRACE_S
        worst = 0
        for index, process in self.processes.items():
            try:
                code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker_killed index=%d reason='did not stop in time'", index)
                process.kill()
                code = process.wait()
            if code == -signal.SIGTERM:
                # Our SIGTERM reached it before its handler was set (a worker still starting:
                # the interpreter, the imports): it had consumed nothing, so it stopped cleanly.
                log.info("worker_stopped_while_starting index=%d", index)
                code = 0
            worst = worst or code
        log.info("workers_stopped workers=%d restarts=%d", self.workers, self.restarts)
        return worst


def supervise(settings: Settings, workers: int, global_args: list[str]) -> int:
    """``seawatch run`` as the supervisor: topics checked (and made), each lane's consumer
    group seeded from the base group's offsets (first start with lanes), then ``workers``
    workers per lane until SIGTERM or Ctrl-C; the exit code."""
    from seawatch.ingest.group_offsets import seed_offsets
    from seawatch.ingest.kafka_io import ensure_topics, topic_partitions
    from seawatch.lanes import plan_lanes

    kafka = settings.kafka
    check_partitions(settings, workers, lambda topic: None)
    if kafka.create_topics:
        ensure_topics(kafka, [*kafka.topics, kafka.dlq_topic], kafka.partitions)
    check_partitions(settings, workers, topic_partitions(kafka, kafka.topics).get)
    lanes = plan_lanes(settings)
    if len(lanes) > 1:
        for lane in lanes:  # where the one consumer of every task stopped
            seed_offsets(kafka, kafka.group_id, lane.group_id, lane.topics)
        log.info(
            "lanes %s",
            " ".join(f"{lane.name}={'+'.join(lane.tasks)}@{lane.group_id}" for lane in lanes),
        )
    names = [lane.name for lane in lanes] if len(lanes) > 1 else None
    supervisor = Supervisor(workers, global_args, lanes=names)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


__all__ = ["Supervisor", "check_partitions", "supervise", "worker_outbox"]
