"""The rules' evaluators: the shared base, and the otolith, fish and silent-instrument rules
(the plankton ones are in :mod:`seawatch.alerts.plankton_rules`). Each keeps its state per
instrument and looks at every stored record.

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
import time
from dataclasses import dataclass
from typing import Any

from seawatch.alert_settings import InstrumentSilentRule, Rule
from seawatch.alerts.model import Alert, Evidence
from seawatch.contracts.records import FrameRecord

NS = 1_000_000_000
MAX_COOLDOWNS = 256  # subjects remembered per instrument before old cooldowns are pruned


def _evidence(record: FrameRecord, sighting: int | None = None) -> Evidence:
    ref, otolith = record.ref, record.otolith
    return Evidence(
        frame_uid=record.uid,
        topic=ref.topic,
        partition=ref.partition,
        offset=ref.offset,
        thumbnail=otolith.thumbnail if otolith else None,
        heatmap=otolith.heatmap if otolith else None,
        sighting=sighting,
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
        *,
        sighting: int | None = None,
    ) -> Alert | None:
        """The alert, or None within the subject's cooldown (or the same event again);
        ``sighting``: the fish's index in a whole tank frame, for the evidence."""
        if isinstance(record_or_instrument, FrameRecord):
            meta = record_or_instrument.meta
            instrument, cruise = meta.instrument, meta.cruise
            evidence = _evidence(record_or_instrument, sighting)
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


class OtolithAnomaly(Evaluator):
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


class NewIndividual(Evaluator):
    """One alert per sighting that enrolled a new fish: every fish of a whole tank frame is
    judged, not only its first (each alert's subject is its fish, so ids stay apart)."""

    def on_record(self, record: FrameRecord) -> list[Alert]:
        alerts = []
        for k, f in enumerate(record.fish_sightings):
            if not f.new_individual:
                continue
            message = (
                f"new fish {f.individual} enrolled at {record.meta.instrument} (best match "
                f"similarity {f.similarity:.3f})"
            )
            alert = self.fire(
                record,
                f.individual,
                message,
                f.similarity,
                0.0,
                record.meta.captured_at_ns,
                sighting=k if record.sightings else None,
            )
            if alert:
                alerts.append(alert)
        return alerts


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
        return {
            "cruise": self.cruise,
            "heard_ns": self.heard_ns,
            "alerted": self.alerted,
            "judged_from_s": self.judged_from_s,
        }


class InstrumentSilent(Evaluator):
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
        # its frames may still be on the way; a grace period under way goes on
        heard.judged_from_s = max(float(data.get("judged_from_s", 0.0)), now_s + self.rule.grace_s)
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


__all__ = ["NS", "Evaluator", "InstrumentSilent", "NewIndividual", "OtolithAnomaly"]
