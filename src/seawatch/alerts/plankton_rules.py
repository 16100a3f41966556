"""The plankton rules: blooms (tumbling windows of capture time against a baseline), the
share of unknown objects (a sliding window of capture time) and the quality of full frames.
Each keeps its state per instrument (see :mod:`seawatch.alerts.rules`)."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from seawatch.alert_settings import FrameQualityRule, PlanktonBloomRule, UnknownRateRule
from seawatch.alerts.model import Alert
from seawatch.alerts.rules import NS, Evaluator
from seawatch.contracts.frames import FrameKind
from seawatch.contracts.records import UNKNOWN, FrameRecord, summarise_taxa


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


class PlanktonBloom(Evaluator):
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


class UnknownRate(Evaluator):
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


class FrameQuality(Evaluator):
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


__all__ = ["FrameQuality", "PlanktonBloom", "UnknownRate"]
