"""The alerts engine: each rule keeps its own state and looks at every stored record.

Data-driven rules run on capture time, so a replay of the same frames fires the same alerts
at the same times (and the ids match); ``instrument_silent`` runs on wall time from
:meth:`AlertEngine.tick`. A rule fires at most once per subject per ``cooldown_s``.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

from seawatch.alert_settings import (
    FrameQualityRule,
    InstrumentSilentRule,
    NewIndividualRule,
    OtolithAnomalyRule,
    PlanktonBloomRule,
    Rule,
    UnknownRateRule,
)
from seawatch.alerts.model import Alert, Evidence
from seawatch.contracts.frames import FrameKind
from seawatch.contracts.records import UNKNOWN, FrameRecord, summarise_taxa

NS = 1_000_000_000


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


class _Evaluator:
    """Shared by every rule: the cooldown per subject, and building the alert."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._last: dict[tuple[str, str], int] = {}

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
        key = (instrument, subject)
        last = self._last.get(key)
        if last is not None and abs(at_ns - last) < self.rule.cooldown_s * NS:
            return None
        if last is not None and at_ns == last:
            return None  # the same event again (a replayed frame)
        self._last[key] = at_ns
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


class _OtolithAnomaly(_Evaluator):
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


class _NewIndividual(_Evaluator):
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


class _PlanktonBloom(_Evaluator):
    """Tumbling windows of capture time per instrument and taxon: count and volume."""

    rule: PlanktonBloomRule

    def __init__(self, rule: PlanktonBloomRule) -> None:
        super().__init__(rule)
        self._window: dict[str, int] = {}  # instrument -> current window index
        self._current: dict[tuple[str, str], int] = defaultdict(int)  # count this window
        self._volume: dict[str, float] = defaultdict(float)
        self._history: dict[tuple[str, str], deque[float]] = defaultdict(
            lambda: deque(maxlen=rule.baseline_windows)
        )

    def _density(self, count: float, volume_ml: float) -> float:
        """Objects per m³ when the volume is known, else objects per window."""
        return count / (volume_ml * 1e-6) if volume_ml > 0 else count

    def on_record(self, record: FrameRecord) -> list[Alert]:
        meta = record.meta
        if meta.task != "plankton":
            return []
        instrument = meta.instrument
        index = int(meta.captured_at_ns // (self.rule.window_s * NS))
        current = self._window.setdefault(instrument, index)
        if index > current:  # close the window: its densities (0 if absent) join the baseline
            volume = self._volume.pop(instrument, 0.0)
            taxa = {t for (i, t) in self._history if i == instrument}
            taxa |= {t for (i, t) in self._current if i == instrument}
            for taxon in taxa:
                count = self._current.pop((instrument, taxon), 0)
                self._history[(instrument, taxon)].append(self._density(count, volume))
            self._window[instrument] = index
        elif index < current:
            return []  # late frame from a closed window: the baseline is not rewritten
        self._volume[instrument] += meta.volume_ml or 0.0
        alerts = []
        for summary in summarise_taxa(record):
            if summary.taxon == UNKNOWN or (self.rule.taxa and summary.taxon not in self.rule.taxa):
                continue
            key = (instrument, summary.taxon)
            self._current[key] += summary.count
            count = self._current[key]
            history = self._history[key]
            if count < self.rule.min_count or len(history) < self.rule.min_baseline_windows:
                continue
            density = self._density(count, self._volume[instrument])
            baseline = statistics.median(history)
            limit = self.rule.factor * baseline
            if density > limit:
                unit = "/m³" if self._volume[instrument] > 0 else " per window"
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


class _UnknownRate(_Evaluator):
    rule: UnknownRateRule

    def __init__(self, rule: UnknownRateRule) -> None:
        super().__init__(rule)
        self._seen: dict[str, deque[tuple[int, int, int]]] = defaultdict(deque)
        # running (objects, unknown) over each instrument's window: O(1) per frame, not O(window)
        self._totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def on_record(self, record: FrameRecord) -> list[Alert]:
        if record.meta.task != "plankton" or not record.objects:
            return []
        at = record.meta.captured_at_ns
        seen = self._seen[record.meta.instrument]
        totals = self._totals[record.meta.instrument]
        unknown = sum(obj.taxon == UNKNOWN for obj in record.objects)
        seen.append((at, len(record.objects), unknown))
        totals[0] += len(record.objects)
        totals[1] += unknown
        while seen and seen[0][0] < at - self.rule.window_s * NS:
            _, n, u = seen.popleft()
            totals[0] -= n
            totals[1] -= u
        total = totals[0]
        share = totals[1] / total
        if total < self.rule.min_objects or share <= self.rule.max_share:
            return []
        message = (
            f"{share:.0%} of the last {total} objects at {record.meta.instrument} are "
            f"unknown (over {self.rule.max_share:.0%} in {self.rule.window_s:g} s)"
        )
        alert = self.fire(record, "unknown", message, share, self.rule.max_share, at)
        return [alert] if alert else []


class _FrameQuality(_Evaluator):
    rule: FrameQualityRule

    def __init__(self, rule: FrameQualityRule) -> None:
        super().__init__(rule)
        self._frames: dict[str, deque[str | None]] = defaultdict(
            lambda: deque(maxlen=rule.window_frames)
        )

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
        frames = self._frames[meta.instrument]
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


class _InstrumentSilent(_Evaluator):
    rule: InstrumentSilentRule

    def __init__(self, rule: InstrumentSilentRule) -> None:
        super().__init__(rule)
        self._seen: dict[tuple[str, str], float] = {}  # (instrument, cruise) -> wall time
        self._alerted: set[tuple[str, str]] = set()

    def on_record(self, record: FrameRecord) -> list[Alert]:
        key = (record.meta.instrument, record.meta.cruise)
        self._seen[key] = time.time()
        self._alerted.discard(key)
        return []

    def on_tick(self, now_s: float) -> list[Alert]:
        alerts = []
        for key, seen in self._seen.items():
            silent = now_s - seen
            if key in self._alerted or silent < self.rule.silent_s:
                continue
            self._alerted.add(key)
            message = f"no frame from {key[0]} for {silent:.0f} s (limit {self.rule.silent_s:g} s)"
            alert = self.fire(key, "silent", message, silent, self.rule.silent_s, int(now_s * NS))
            if alert:
                alerts.append(alert)
        return alerts


_EVALUATORS: dict[type, type[_Evaluator]] = {
    OtolithAnomalyRule: _OtolithAnomaly,
    NewIndividualRule: _NewIndividual,
    PlanktonBloomRule: _PlanktonBloom,
    UnknownRateRule: _UnknownRate,
    FrameQualityRule: _FrameQuality,
    InstrumentSilentRule: _InstrumentSilent,
}


class AlertEngine:
    """Evaluates the configured rules on records (in capture order) and on clock ticks."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.evaluators = [_EVALUATORS[type(rule)](rule) for rule in rules]

    def evaluate(self, records: Iterable[FrameRecord]) -> list[Alert]:
        """The alerts these stored records fire, in order."""
        ordered = sorted(records, key=lambda r: (r.meta.instrument, r.meta.captured_at_ns))
        return [a for r in ordered for e in self.evaluators for a in e.on_record(r)]

    def tick(self, now_s: float | None = None) -> list[Alert]:
        """The alerts of time-based rules (``instrument_silent``) at wall time ``now_s``."""
        now_s = time.time() if now_s is None else now_s
        return [a for e in self.evaluators for a in e.on_tick(now_s)]


__all__ = ["AlertEngine"]
