"""Alert state tied to the partitions this worker owns, kept across restarts and rebalances,
and no alert sent twice.

Frames are keyed by instrument, so one instrument's frames live on one partition, and its
alert state (cooldowns, bloom windows and baselines, unknown-rate and frame-quality windows,
when it was last heard) can follow that partition:

* **Snapshot at the commit point.** After a batch's alerts are acknowledged and before its
  offsets are committed, the state of every partition whose state changed is written to a
  compacted topic (``alerts.state_topic``; key ``group/topic/partition``), with the highest
  offset it covers and where the alerts topic stood. A failed write holds the batch's commit
  back, so committed offsets never run ahead of the saved state.
* **Restore on assignment.** The worker reads the newest snapshot of each partition it now
  owns and takes over its instruments. Records at or below the snapshot's offset are not
  judged again, so a replay after a crash between snapshot and commit neither counts into a
  baseline twice nor fires again.
* **No second copy.** Alert ids are deterministic (capture time for data-driven rules; the
  moment the limit passed for ``instrument_silent``). Alerts sent after a snapshot and before a
  crash lie on the alerts topic (keyed by alert id) after the positions the snapshot
  recorded; their ids are read back on assignment, and an alert the replay fires again is
  not sent (to Kafka, InfluxDB or webhooks) a second time.
* **Forget on revoke.** A revoked partition's instruments leave the engine (the snapshot of
  the last commit point is current), so the silent rule judges only instruments whose
  partition this worker owns; records of a revoked partition still in flight are left to its
  new owner (the source commits only owned partitions). A restored instrument gets the
  silent rule's ``grace_s`` before it can be called silent. A partition revoked and given
  back with no other owner in between (the eager protocol revokes everything on every
  rebalance) keeps its state as it was here, grace included.

Why a Kafka topic and not the local store or the commit's metadata: workers of one group may
run on several hosts, and Kafka limits commit metadata to 4 KB by default; the topic is
beside the offsets, on the broker every worker reaches. Kafka compacts it to one snapshot per
partition; a broker that does not compact (Tansu on memory) keeps every version, a few KB per
batch, small beside the frames themselves, and reads go from the end backwards.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from seawatch.alerts import snapshot
from seawatch.alerts.engine import AlertEngine
from seawatch.alerts.model import Alert
from seawatch.contracts.errors import BrokerError
from seawatch.contracts.partitions import Partition
from seawatch.contracts.records import FrameRecord

log = logging.getLogger(__name__)

MAX_SENT_IDS = 50_000  # ids of alerts known to be sent, newest kept


class StateLog(Protocol):
    """Keyed topics read and written outside the group (:class:`seawatch.ingest.keyed_topics.
    KeyedTopics`). Each method raises BrokerError when the broker cannot answer."""

    def ends(self, topic: str) -> dict[int, int]:
        """Each partition's end offset (a lower bound is enough)."""

    def latest(self, topic: str, keys: Collection[str]) -> dict[str, bytes]:
        """The newest value of each of ``keys`` written."""

    def keys_since(self, topic: str, positions: dict[int, int]) -> list[str]:
        """The keys written from ``positions`` on (a partition not named: from its start)."""

    def put(self, topic: str, items: dict[str, bytes]) -> None:
        """Write ``items`` and return once the broker has them."""


@dataclass
class _Owned:
    """A partition this worker owns: the highest offset judged, whether its state changed
    since the last snapshot, and the token of the last snapshot written of it here."""

    covered: int = -1
    dirty: bool = False
    written: str | None = None


@dataclass
class _Stash:
    """A revoked partition's state as it was here, kept until the next assignment."""

    owned: _Owned
    instruments: dict[str, dict[str, Any]]


class PartitionedAlerts:
    """The alert engine judged on the records of the partitions this worker owns, its state
    saved to and restored from ``log`` (None: kept in memory only). A
    :class:`~seawatch.contracts.partitions.PartitionListener` for the frame source."""

    def __init__(
        self,
        engine: AlertEngine,
        *,
        group_id: str,
        log_: StateLog | None = None,
        state_topic: str | None = None,
        alerts_topic: str | None = None,
        sent_positions: Callable[[], dict[int, int]] = dict,
        interval_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.group_id = group_id
        self.log = log_ if state_topic else None
        self.state_topic = state_topic
        self.alerts_topic = alerts_topic
        self._sent_positions = sent_positions  # next offset per alerts partition, ours
        self._clock = clock
        self.interval_s = interval_s  # snapshots (and so commits) at most this often
        self._written_at = float("-inf")  # monotonic time of the last snapshot written
        self._writer = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._events: list[tuple[str, list[Partition]]] = []
        self._lock = threading.Lock()
        self._owned: dict[Partition, _Owned] = {}
        self._stash: dict[Partition, _Stash] = {}
        self._home: dict[str, Partition] = {}  # instrument -> partition of its latest frame
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._alerts_base: dict[int, int] = {}
        self.skipped_replays = 0  # records at or below a snapshot's offset, not judged again
        self.suppressed = 0  # alerts fired again by a replay and not sent

    # -- the listener: the Kafka client's thread, while the loop waits in a poll ------------

    def partitions_revoked(self, partitions: Collection[Partition]) -> None:
        self._queue("revoked", partitions)

    def partitions_assigned(self, partitions: Collection[Partition]) -> None:
        self._queue("assigned", partitions)

    def partitions_rewound(self, partitions: Collection[Partition]) -> None:
        self._queue("rewound", partitions)

    def _queue(self, event: str, partitions: Collection[Partition]) -> None:
        with self._lock:
            self._events.append((event, [Partition(*p) for p in partitions]))

    # -- the loop's thread ----------------------------------------------------------------

    @property
    def owned(self) -> set[Partition]:
        """The partitions judged here now."""
        self._apply_events()
        return set(self._owned)

    def evaluate(self, records: Iterable[FrameRecord]) -> list[Alert]:
        """The alerts not sent before that these stored records fire; records of partitions
        not owned, or at or below their snapshot's offset, are not judged."""
        self._apply_events()
        judged, skipped = [], self.skipped_replays
        for record in records:
            owned = self._owned.get(Partition(record.ref.topic, record.ref.partition))
            if owned is None:
                continue  # revoked while in flight: its new owner judges it
            if record.ref.offset <= owned.covered:
                self.skipped_replays += 1
                continue
            judged.append(record)
        if self.skipped_replays > skipped:
            log.info("alert_replay_skipped records=%d", self.skipped_replays - skipped)
        alerts = self.engine.evaluate(judged)
        for record in judged:
            partition = Partition(record.ref.topic, record.ref.partition)
            owned = self._owned[partition]
            owned.covered, owned.dirty = max(owned.covered, record.ref.offset), True
            self._move(record.meta.instrument, partition)
        return self._unsent(alerts)

    def tick(self, now_s: float | None = None) -> list[Alert]:
        """The time-based alerts (silent instruments of owned partitions) not sent before.
        First writes what the previous tick's alerts changed (they are durable by now)."""
        self._apply_events()
        self.checkpoint()
        alerts = self.engine.tick(now_s)
        for alert in alerts:
            home = self._home.get(alert.instrument)
            if home in self._owned:
                self._owned[home].dirty = True
        return self._unsent(alerts)

    def checkpoint(self, force: bool = False) -> bool:
        """Write the state of every owned partition that changed since its last snapshot,
        at most every ``interval_s`` unless ``force``. Call once the alerts it fired are
        acknowledged, before committing the offsets it covers; False when it was not written
        (not due yet, or the broker did not take it): do not commit those offsets then."""
        dirty = [p for p, owned in self._owned.items() if owned.dirty]
        if not dirty:
            return True
        if self.log is None or self.state_topic is None:
            for partition in dirty:
                self._owned[partition].dirty = False
            return True
        if not force and time.monotonic() - self._written_at < self.interval_s:
            return False
        positions = self._alerts_from()
        tokens, items = {}, {}
        for partition in dirty:
            self._sequence += 1
            tokens[partition] = f"{self._writer}-{self._sequence}"
            items[self._key(partition)] = snapshot.encode(
                partition,
                group=self.group_id,
                covered=self._owned[partition].covered,
                token=tokens[partition],
                alerts_from=positions,
                instruments={i: self.engine.export(i) for i in self._instruments_of(partition)},
            )
        try:
            self.log.put(self.state_topic, items)
        except BrokerError as exc:
            log.warning(
                "alert_state_not_written partitions=%d error=%s effect='offsets not committed; "
                "written with the next batch'",
                len(dirty),
                exc,
            )
            return False
        for partition, token in tokens.items():
            self._owned[partition].dirty, self._owned[partition].written = False, token
        self._written_at = time.monotonic()
        return True

    # -- state per partition --------------------------------------------------------------

    def _key(self, partition: Partition) -> str:
        return f"{self.group_id}/{partition.topic}/{partition.partition}"

    def _instruments_of(self, partition: Partition) -> list[str]:
        return sorted(i for i, home in self._home.items() if home == partition)

    def _move(self, instrument: str, partition: Partition) -> None:
        """``instrument``'s frames now come from ``partition`` (normally they always do)."""
        before = self._home.get(instrument)
        if before != partition:
            self._home[instrument] = partition
            if before in self._owned:
                self._owned[before].dirty = True  # type: ignore[index]

    def _alerts_from(self) -> dict[int, int]:
        """Where the alerts topic stands for this worker: any alert it sends from now on
        lies at or after these offsets."""
        ours = self._sent_positions()
        return {
            p: max(self._alerts_base.get(p, 0), ours.get(p, 0)) for p in {*self._alerts_base, *ours}
        }

    def _unsent(self, alerts: list[Alert]) -> list[Alert]:
        fresh = []
        for alert in alerts:
            if alert.id in self._sent:
                self.suppressed += 1
                log.info("alert_already_sent id=%s rule=%s", alert.id, alert.rule)
                continue
            self._remember(alert.id)
            fresh.append(alert)
        return fresh

    def _remember(self, alert_id: str) -> None:
        self._sent[alert_id] = None
        if len(self._sent) > MAX_SENT_IDS:
            self._sent.popitem(last=False)

    # -- rebalances -----------------------------------------------------------------------

    def _apply_events(self) -> None:
        with self._lock:
            events, self._events = self._events, []
        for event, partitions in events:
            if event == "revoked":
                self._release(partitions)
            elif event == "assigned":
                self._take(partitions)
            else:  # rewound: the topic was recreated, its offsets start again
                for partition in partitions:
                    if partition in self._owned:
                        self._owned[partition].covered, self._owned[partition].dirty = -1, True

    def _release(self, partitions: Iterable[Partition]) -> None:
        for partition in partitions:
            owned = self._owned.pop(partition, None)
            if owned is None:
                continue
            instruments = self._instruments_of(partition)
            exported = {i: self.engine.export(i) for i in instruments}
            self._stash[partition] = _Stash(owned, exported)
            for instrument in instruments:
                self.engine.forget(instrument)
                del self._home[instrument]
            log.info(
                "alert_state_released partition=%s instruments=%d", partition, len(instruments)
            )

    def _take(self, partitions: Iterable[Partition]) -> None:
        partitions = [p for p in partitions if p not in self._owned]
        stash, self._stash = self._stash, {}
        snapshots = self._read(partitions)  # None: unreadable
        now = self._clock()
        restored, kept, sent_from = 0, 0, []
        for partition in partitions:
            latest = (snapshots or {}).get(partition)
            mine = stash.get(partition)
            if mine is not None and (
                snapshots is None or (latest or {}).get("token") == mine.owned.written
            ):  # no other owner wrote one since: the state as it was here
                self._owned[partition] = mine.owned
                self._restore(partition, mine.instruments, now)  # with a grace period: this
                kept += 1  # worker was away in the rejoin
            elif latest is None:  # a first snapshot soon, so the next owner finds one
                self._owned[partition] = _Owned(dirty=True)
                sent_from.append({})  # alerts may have been sent for it: read them all
            else:
                self._owned[partition] = _Owned(int(latest["covered"]), False, latest["token"])
                self._restore(partition, latest["instruments"], now)
                sent_from.append(latest["alerts_from"])
                restored += 1
        sent = self._read_sent(sent_from)
        log.info(
            "alert_state_taken partitions=%s restored=%d kept=%d sent_ids=%d",
            _names(partitions),
            restored,
            kept,
            sent,
        )

    def _restore(self, partition: Partition, instruments: dict[str, Any], now: float) -> None:
        for instrument, data in instruments.items():
            self.engine.restore(instrument, data, now)
            self._home[instrument] = partition

    def _read(self, partitions: list[Partition]) -> dict[Partition, dict[str, Any]] | None:
        """The newest snapshot of each partition that has a readable one; None when the
        broker could not be read (or there is no log)."""
        if self.log is None or self.state_topic is None:
            return None
        if not partitions:
            return {}
        if self.alerts_topic and not self._alerts_base:
            try:  # where the alerts topic stands: our snapshots name it (see _alerts_from)
                self._alerts_base = self.log.ends(self.alerts_topic)
            except BrokerError as exc:
                log.warning("alerts_topic_end_unknown error=%s effect='read from its start'", exc)
        try:
            found = self.log.latest(self.state_topic, [self._key(p) for p in partitions])
        except BrokerError as exc:
            log.error(
                "alert_state_unreadable topic=%s error=%s effect='these partitions are judged "
                "from the state they had here, else from an empty one'",
                self.state_topic,
                exc,
            )
            return None
        snapshots = {}
        for partition in partitions:
            raw = found.get(self._key(partition))
            if raw is None:
                continue
            try:
                snapshots[partition] = snapshot.decode(raw)
            except ValueError as exc:
                log.error("alert_state_ignored partition=%s reason=%r", partition, str(exc))
        return snapshots

    def _read_sent(self, sent_from: list[dict[int, int]]) -> int:
        """Remember the ids on the alerts topic from the earliest of ``sent_from`` on."""
        if not sent_from or self.log is None or not self.alerts_topic:
            return 0
        partitions = set().union(*(s.keys() for s in sent_from))
        positions = {  # a partition a snapshot does not name: from its start
            p: min(s.get(p, 0) for s in sent_from) for p in partitions
        }
        try:
            ids = self.log.keys_since(self.alerts_topic, positions)
        except BrokerError as exc:
            log.error(
                "alerts_topic_unreadable topic=%s error=%s effect='a replay may send alerts again'",
                self.alerts_topic,
                exc,
            )
            return 0
        for alert_id in ids:
            self._remember(alert_id)
        return len(ids)


def _names(partitions: Iterable[Partition]) -> str:
    return ",".join(str(p) for p in sorted(partitions)) or "-"


__all__ = ["PartitionedAlerts", "StateLog"]
