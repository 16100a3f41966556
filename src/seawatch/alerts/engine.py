"""The alerts engine: the configured rules (:mod:`seawatch.alerts.rules`) over stored records,
in capture order, and over clock ticks; and each instrument's state, for keeping it across
restarts and rebalances (:mod:`seawatch.alerts.partitioned`).

On its own the engine keeps its state in memory and judges every record it is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from seawatch.alert_settings import Rule
from seawatch.alerts.model import Alert
from seawatch.alerts.plankton_rules import FrameQuality, PlanktonBloom, UnknownRate
from seawatch.alerts.rules import Evaluator, InstrumentSilent, NewIndividual, OtolithAnomaly
from seawatch.contracts.records import FrameRecord

log = logging.getLogger(__name__)

EVALUATORS: dict[str, type[Evaluator]] = {
    "otolith_anomaly": OtolithAnomaly,
    "new_individual": NewIndividual,
    "plankton_bloom": PlanktonBloom,
    "unknown_rate": UnknownRate,
    "frame_quality": FrameQuality,
    "instrument_silent": InstrumentSilent,
}


class AlertEngine:
    """Evaluates the configured rules on records (in capture order) and on clock ticks."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.evaluators = [EVALUATORS[rule.kind](rule) for rule in rules]

    def evaluate(self, records: Iterable[FrameRecord]) -> list[Alert]:
        """The alerts these stored records fire, in order."""
        ordered = sorted(records, key=lambda r: (r.meta.instrument, r.meta.captured_at_ns))
        return [a for r in ordered for e in self.evaluators for a in e.on_record(r)]

    def tick(self, now_s: float | None = None) -> list[Alert]:
        """The alerts of time-based rules (``instrument_silent``) at wall time ``now_s``."""
        now_s = time.time() if now_s is None else now_s
        return [a for e in self.evaluators for a in e.on_tick(now_s)]

    def checkpoint(self, force: bool = False) -> bool:
        """Make the state durable: nothing to do here (memory only); True."""
        return True

    def instruments(self) -> set[str]:
        """Every instrument some rule holds state for."""
        return set().union(*(e.instruments() for e in self.evaluators))

    def export(self, instrument: str) -> dict[str, dict[str, Any]]:
        """``instrument``'s state in every rule that holds some: rule name ->
        ``{"rule": fingerprint of its settings, ...its state}`` (JSON-able)."""
        exported = {}
        for e in self.evaluators:
            data = e.export(instrument)
            if data is not None:
                exported[e.rule.name] = {"rule": e.fingerprint, **data}
        return exported

    def restore(self, instrument: str, data: dict[str, dict[str, Any]], now_s: float) -> None:
        """Take ``instrument``'s state from :meth:`export`'s ``data``. A rule whose settings
        changed since (or that is gone) starts afresh for it."""
        by_name = {e.rule.name: e for e in self.evaluators}
        for name, state in data.items():
            evaluator = by_name.get(name)
            if evaluator is None or state.get("rule") != evaluator.fingerprint:
                log.info(
                    "alert_state_dropped rule=%s instrument=%s reason='rule removed or its "
                    "settings changed' effect='its state starts afresh'",
                    name,
                    instrument,
                )
                continue
            evaluator.restore(instrument, state, now_s)

    def forget(self, instrument: str) -> None:
        """Drop ``instrument``'s state in every rule."""
        for e in self.evaluators:
            e.forget(instrument)


__all__ = ["AlertEngine"]
