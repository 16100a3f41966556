"""The rules' evaluators: each keeps its state per instrument and looks at every stored record.

Data-driven rules run on capture time, so a replay of the same frames fires the same alerts
at the same times (and the ids match); ``instrument_silent`` runs on wall time from
:meth:`~seawatch.alerts.engine.AlertEngine.tick`. A rule fires at most once per subject per
``cooldown_s``.

Every evaluator's state is a map from instrument to a small JSON-able value (its cooldowns
and, per rule, its windows and baselines), so the state of one instrument can be exported,
restored elsewhere and forgotten: frames are keyed by instrument, so an instrument's state
follows the Kafka partition its frames live on (:mod:`seawatch.alerts.partitioned`).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from seawatch.alert_settings import (
    FrameQualityRule,
    InstrumentSilentRule,
    PlanktonBloomRule,
    Rule,
    UnknownRateRule,
)
from seawatch.alerts.model import Alert, Evidence
from seawatch.contracts.frames import FrameKind
from seawatch.contracts.records import UNKNOWN, FrameRecord, summarise_taxa

NS = 1_000_000_000
MAX_COOLDOWNS = 256  # subjects remembered per instrument before old cooldowns are pruned


def _evidence(record: FrameRecord) -> Evidence:
    ref, otolith = record.ref, record.otolith
    return Evidence(
        frame_uid=record.uid,
        topic=ref.topic,
        partition=ref.partition,
        offset=ref.offset,
        thumbnail=otolith.thumbnail if otolith else None,
        heatmap=otolith.heatmap if otolith else None,
    )


class Evaluator:
    """Shared by every rule: the cooldown per instrument and subject, building the alert,
    and the export, restore and forgetting of one instrument's state."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        # what the rule is (its settings): a state saved under other settings is not restored
        self.fingerprint = hashlib.sha1(rule.model_dump_json().encode()).hexdigest()[:12]
        self._fired: dict[str, dict[str, int]] = {}  # instrument -> subject -> last at_ns

    def fire(
        self,
        record_or_instrument: FrameRecord | tuple[str, str],
        subject: str,
        message: str,
        value: float,
        threshold: float,
        at_ns: int,
    ) -> Alert | None:
        if isinstance(record_or_instrument, FrameRecord):
            meta = record_or_instrument.meta
            instrument, cruise = meta.instrument, meta.cruise
            evidence = _evidence(record_or_instrument)
        else:
            (instrument, cruise), evidence = record_or_instrument, Evidence()
        fired = self._fired.setdefault(instrument, {})
        last = fired.get(subject)
        cooldown_ns = self.rule.cooldown_s * NS
        if last is not None and abs(at_ns - last) < cooldown_ns:
            return None
        if last is not None and at_ns == last:
            return None  # the same event again (a replayed frame)
        fired[subject] = at_ns
        if len(fired) > MAX_COOLDOWNS:  # subjects (specimens, fish) keep coming: keep the live
            for old in [s for s, t in fired.items() if t < at_ns - cooldown_ns]:
                del fired[old]
        return Alert(
            rule=self.rule.name,
            kind=self.rule.kind,
            severity=self.rule.severity,
            instrument=instrument,
            cruise=cruise,
            subject=subject,
            message=message,
            value=round(float(value), 6),
            threshold=round(float(threshold), 6),
            at_ns=at_ns,
            evidence=evidence,
        )

    def on_record(self, record: FrameRecord) -> list[Alert]:
        return []

    def on_tick(self, now_s: float) -> list[Alert]:
        return []

    def instruments(self) -> set[str]:
        """The instruments this rule holds state for."""
        return set(self._fired) | set(self._states())

    def export(self, instrument: str) -> dict[str, Any] | None:
        """``instrument``'s state as JSON-able data (None: nothing kept)."""
        state = self._states().get(instrument)
        fired = self._fired.get(instrument)
        if state is None and not fired:
            return None
        return {"fired": dict(fired or {}), "state": None if state is None else state.dump()}

    def restore(self, instrument: str, data: dict[str, Any], now_s: float) -> None:
        """Take ``instrument``'s state from :meth:`export`'s ``data`` (``now_s``: wall time)."""
        self._fired[instrument] = {str(s): int(t) for s, t in data.get("fired", {}).items()}
        if data.get("state") is not None:
            self._states()[instrument] = self._load(data["state"], now_s)

    def forget(self, instrument: str) -> None:
        """Drop ``instrument``'s state (its partition went to another worker)."""
        self._fired.pop(instrument, None)
        self._states().pop(instrument, None)

    def _states(self) -> dict[str, Any]:
        """The rule's own state per instrument (objects with ``dump()``); none by default."""
        return {}

    def _load(self, data: Any, now_s: float) -> Any:
        raise NotImplementedError


class _OtolithAnomaly(Evaluator):
    def on_record(self, record: FrameRecord) -> list[Alert]:
        o = record.otolith
        if o is None or not o.anomaly:
            return []
        specimen = o.specimen_id or record.uid
        message = (
            f"otolith {specimen} at {record.meta.instrument} looks anomalous: score "
            f"{o.score:.3f} over the threshold {o.threshold:.3f}"
        )
        alert = self.fire(
            record, specimen, message, o.score, o.threshold, record.meta.captured_at_ns
        )
        return [alert] if alert else []


class _NewIndividual(Evaluator):
    def on_record(self, record: FrameRecord) -> list[Alert]:
        f = record.fish
        if f is None or not f.new_individual:
            return []
        message = (
            f"new fish {f.individual} enrolled at {record.meta.instrument} (best match "
            f"similarity {f.similarity:.3f})"
        )
        alert = self.fire(
            record, f.individual, message, f.similarity, 0.0, record.meta.captured_at_ns
        )
        return [alert] if alert else []


@dataclass
class _Windows:
    """One instrument's bloom state: the open window, and per taxon its count in it and the
    densities of the closed windows before (the baseline)."""

    window: int
    maxlen: int
    volume: float = 0.0
    current: dict[str, int] = field(default_factory=dict)
    history: dict[str, deque[float]] = field(default_factory=dict)

    def baseline(self, taxon: str) -> deque[float]:
        return self.history.setdefault(taxon, deque(maxlen=self.maxlen))

    def dump(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "volume": self.volume,
            "current": dict(self.current),
            "history": {t: list(h) for t, h in self.history.items()},
        }


class _PlanktonBloom(Evaluator):
    """Tumbling windows of capture time per instrument and taxon: count and volume."""

    rule: PlanktonBloomRule

    def __init__(self, rule: PlanktonBloomRule) -> None:
        super().__init__(rule)
        self._windows: dict[str, _Windows] = {}

    def _states(self) -> dict[str, _Windows]:
        return self._windows

    def _load(self, data: dict[str, Any], now_s: float) -> _Windows:
        state = _Windows(int(data["window"]), self.rule.baseline_windows, float(data["volume"]))
        state.current = {t: int(c) for t, c in data["current"].items()}
        for taxon, densities in data["history"].items():
            state.baseline(taxon).extend(float(d) for d in densities)
        return state

    def _density(self, count: float, volume_ml: float) -> float:
        """Objects per m³ when the volume is known, else objects per window."""
        return count / (volume_ml * 1e-6) if volume_ml > 0 else count

    def on_record(self, record: FrameRecord) -> list[Alert]:
        meta = record.meta
        if meta.task != "plankton":
            return []
        instrument = meta.instrument
        index = int(meta.captured_at_ns // (self.rule.window_s * NS))
        state = self._windows.setdefault(instrument, _Windows(index, self.rule.baseline_windows))
        if index > state.window:  # close the window: its densities (0 if absent) join the baseline
            volume, state.volume = state.volume, 0.0
            for taxon in set(state.history) | set(state.current):
                count = state.current.pop(taxon, 0)
                state.baseline(taxon).append(self._density(count, volume))
            state.window = index
        elif index < state.window:
            return []  # late frame from a closed window: the baseline is not rewritten
        state.volume += meta.volume_ml or 0.0
        alerts = []
        for summary in summarise_taxa(record):
            if summary.taxon == UNKNOWN or (self.rule.taxa and summary.taxon not in self.rule.taxa):
                continue
            count = state.current[summary.taxon] = (
                state.current.get(summary.taxon, 0) + summary.count
            )
            history = state.baseline(summary.taxon)
            if count < self.rule.min_count or len(history) < self.rule.min_baseline_windows:
                continue
            density = self._density(count, state.volume)
            baseline = statistics.median(history)
            limit = self.rule.factor * baseline
            if density > limit:
                unit = "/m³" if state.volume > 0 else " per window"
                message = (
                    f"{summary.taxon} bloom at {instrument}: {density:.4g}{unit} is over "
                    f"{self.rule.factor:g} x its median {baseline:.4g}{unit} "
                    f"({len(history)} windows of {self.rule.window_s:g} s)"
                )
                alert = self.fire(
                    record, summary.taxon, message, density, limit, meta.captured_at_ns
                )
                if alert:
                    alerts.append(alert)
        return alerts


@dataclass
class _Seconds:
    """One instrument's unknown-rate window: (second of capture time, objects, unknown) per
    second with frames, and the running totals over them."""

    buckets: deque[list[int]] = field(default_factory=deque)
    objects: int = 0
    unknown: int = 0

    def dump(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "objects": self.objects, "unknown": self.unknown}


class _UnknownRate(Evaluator):
    """The window moves in steps of one second of capture time: a frame joins the bucket of
    its second (a late frame the newest bucket), so the state is at most ``window_s``
    buckets per instrument however many frames a second brings."""

    rule: UnknownRateRule

    def __init__(self, rule: UnknownRateRule) -> None:
        super().__init__(rule)
        self._windows: dict[str, _Seconds] = {}

    def _states(self) -> dict[str, _Seconds]:
        return self._windows

    def _load(self, data: dict[str, Any], now_s: float) -> _Seconds:
        buckets = deque([int(s), int(n), int(u)] for s, n, u in data["buckets"])
        return _Seconds(buckets, int(data["objects"]), int(data["unknown"]))

    def on_record(self, record: FrameRecord) -> list[Alert]:
        if record.meta.task != "plankton" or not record.objects:
            return []
        at = record.meta.captured_at_ns
        state = self._windows.setdefault(record.meta.instrument, _Seconds())
        unknown = sum(obj.taxon == UNKNOWN for obj in record.objects)
        second = at - at % NS
        if state.buckets and second <= state.buckets[-1][0]:
            state.buckets[-1][1] += len(record.objects)
            state.buckets[-1][2] += unknown
        else:
            state.buckets.append([second, len(record.objects), unknown])
        state.objects += len(record.objects)
        state.unknown += unknown
        while len(state.buckets) > 1 and state.buckets[0][0] < at - self.rule.window_s * NS:
            _, n, u = state.buckets.popleft()
            state.objects -= n
            state.unknown -= u
        total = state.objects
        share = state.unknown / total
        if total < self.rule.min_objects or share <= self.rule.max_share:
            return []
        message = (
            f"{share:.0%} of the last {total} objects at {record.meta.instrument} are "
            f"unknown (over {self.rule.max_share:.0%} in {self.rule.window_s:g} s)"
        )
        alert = self.fire(record, "unknown", message, share, self.rule.max_share, at)
        return [alert] if alert else []


@dataclass
class _Frames:
    """One instrument's last full frames: the problem of each (None: fine)."""

    problems: deque[str | None]

    def dump(self) -> list[str | None]:
        return list(self.problems)


class _FrameQuality(Evaluator):
    rule: FrameQualityRule

    def __init__(self, rule: FrameQualityRule) -> None:
        super().__init__(rule)
        self._frames: dict[str, _Frames] = {}

    def _states(self) -> dict[str, _Frames]:
        return self._frames

    def _load(self, data: list[str | None], now_s: float) -> _Frames:
        return _Frames(deque(data, maxlen=self.rule.window_frames))

    def problem(self, record: FrameRecord) -> str | None:
        """Why a full frame is bad (empty, blurred, saturated), or None when it is fine."""
        q = record.quality
        if q is not None and q.saturated_share > self.rule.max_saturated_share:
            return "saturated"
        if q is not None and q.sharpness < self.rule.min_sharpness:
            return "blurred"
        if not record.objects:
            return "empty"
        return None

    def on_record(self, record: FrameRecord) -> list[Alert]:
        meta = record.meta
        if meta.task != "plankton" or meta.frame_kind is not FrameKind.FULL:
            return []
        frames = self._frames.setdefault(
            meta.instrument, _Frames(deque(maxlen=self.rule.window_frames))
        ).problems
        frames.append(self.problem(record))
        bad = [p for p in frames if p is not None]
        share = len(bad) / len(frames)
        if len(frames) < self.rule.min_frames or share <= self.rule.max_share:
            return []
        kinds = ", ".join(f"{k} {bad.count(k)}" for k in sorted(set(bad)))
        message = (
            f"{share:.0%} of the last {len(frames)} frames at {meta.instrument} are bad "
            f"({kinds}); the limit is {self.rule.max_share:.0%}"
        )
        alert = self.fire(
            record, "frames", message, share, self.rule.max_share, meta.captured_at_ns
        )
        return [alert] if alert else []


@dataclass
class _Heard:
    """When an instrument's last frame was judged (wall time), on which cruise; whether its
    silence since was reported; and, for a state restored from elsewhere, the wall time
    before which it is not judged (the grace period)."""

    cruise: str
    heard_ns: int
    alerted: bool = False
    judged_from_s: float = 0.0

    def dump(self) -> dict[str, Any]:
        return {"cruise": self.cruise, "heard_ns": self.heard_ns, "alerted": self.alerted}


class _InstrumentSilent(Evaluator):
    """An alert's ``at_ns`` is the moment the limit passed (last frame + ``silent_s``), so
    the same silence judged again (after a restart, by a worker that took the partition
    over) yields the same alert id."""

    rule: InstrumentSilentRule

    def __init__(self, rule: InstrumentSilentRule) -> None:
        super().__init__(rule)
        self._heard: dict[str, _Heard] = {}

    def _states(self) -> dict[str, _Heard]:
        return self._heard

    def _load(self, data: dict[str, Any], now_s: float) -> _Heard:
        heard = _Heard(str(data["cruise"]), int(data["heard_ns"]), bool(data["alerted"]))
        heard.judged_from_s = now_s + self.rule.grace_s  # its frames may still be on the way
        return heard

    def on_record(self, record: FrameRecord) -> list[Alert]:
        meta = record.meta
        self._heard[meta.instrument] = _Heard(meta.cruise, time.time_ns())
        return []

    def on_tick(self, now_s: float) -> list[Alert]:
        alerts = []
        for instrument, heard in self._heard.items():
            silent = now_s - heard.heard_ns / NS
            if heard.alerted or silent < self.rule.silent_s or now_s < heard.judged_from_s:
                continue
            heard.alerted = True
            message = (
                f"no frame from {instrument} for {silent:.0f} s (limit {self.rule.silent_s:g} s)"
            )
            at_ns = heard.heard_ns + round(self.rule.silent_s * NS)
            key = (instrument, heard.cruise)
            alert = self.fire(key, "silent", message, silent, self.rule.silent_s, at_ns)
            if alert:
                alerts.append(alert)
        return alerts


EVALUATORS: dict[str, type[Evaluator]] = {
    "otolith_anomaly": _OtolithAnomaly,
    "new_individual": _NewIndividual,
    "plankton_bloom": _PlanktonBloom,
    "unknown_rate": _UnknownRate,
    "frame_quality": _FrameQuality,
    "instrument_silent": _InstrumentSilent,
}


def evaluators(rules: Iterable[Rule]) -> list[Evaluator]:
    """One evaluator per configured rule, in order."""
    return [EVALUATORS[rule.kind](rule) for rule in rules]


__all__ = ["EVALUATORS", "Evaluator", "evaluators"]
