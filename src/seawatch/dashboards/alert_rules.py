"""Grafana unified-alerting rules that mirror the daemon's alert rules, and the contact point.

One Grafana rule per configured daemon rule, in one rule group (``seawatch``) of the seawatch
folder, evaluated every ``dashboards.alert_interval``. Each rule is InfluxQL queries on the
seawatch datasource plus server-side expressions (``__expr__``: reduce, math, threshold),
split by instrument like the daemon's subjects. The uid derives from the rule's name, the
title is the name, the ``severity`` label the rule's severity, and the thresholds are the
daemon's. Where the daemon's logic cannot be written in InfluxQL the rule approximates it;
each builder's docstring says how.

The daemon stays the reference: it evaluates every frame exactly, writes each alert to the
``alerts`` measurement and its webhooks. The Grafana rules let an operator see, silence and
route the same conditions in Grafana.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seawatch.alert_settings import (
    FrameQualityRule,
    InstrumentSilentRule,
    NewIndividualRule,
    OtolithAnomalyRule,
    PlanktonBloomRule,
    Rule,
    UnknownRateRule,
    WebhookSettings,
)
from seawatch.config import Settings

RULE_GROUP = "seawatch"
CONTACT_POINT = "seawatch"
EXPRESSION_UID = "__expr__"
#: The window of the frame-quality approximation (the daemon counts frames, not seconds).
FRAME_QUALITY_WINDOW_S = 600
#: How far back an instrument counts as "seen before" for the silence rule (at least).
SILENT_LOOKBACK_S = 6 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UID_OK = re.compile(r"^[A-Za-z0-9_-]+$")

Model = dict[str, Any]


def duration_s(text: str) -> int:
    """Seconds of a Grafana/Prometheus duration such as ``90s``, ``1m`` or ``1h30m``."""
    parts = re.findall(r"(\d+)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 30s, 1m or 1h30m")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The Prometheus form Grafana returns (``0s``, ``5m``, ``1h30m``) of whole seconds."""
    left = math.ceil(seconds)
    if left == 0:
        return "0s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out


def rule_uid(name: str) -> str:
    """A stable Grafana uid (at most 40 of ``[A-Za-z0-9_-]``) derived from the rule's name."""
    uid = f"seawatch-{name}"
    if _UID_OK.match(uid) and len(uid) <= 40:
        return uid
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:20]
    return f"seawatch-{slug}-{digest}"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _query(ref: str, influxql: str, from_s: int, ds_uid: str) -> Model:
    return {
        "refId": ref,
        "queryType": "",
        "relativeTimeRange": {"from": from_s, "to": 0},
        "datasourceUid": ds_uid,
        "model": {
            "refId": ref,
            "query": influxql,
            "rawQuery": True,
            "resultFormat": "time_series",
            "intervalMs": 1000,
            "maxDataPoints": 43200,
        },
    }


def _expr(ref: str, **model: Any) -> Model:
    return {
        "refId": ref,
        "queryType": "",
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": EXPRESSION_UID,
        "model": {"refId": ref, "datasource": {"type": "__expr__", "uid": EXPRESSION_UID}, **model},
    }


def _reduce(ref: str, of: str) -> Model:
    return _expr(ref, type="reduce", expression=of, reducer="last", settings={"mode": "dropNN"})


def _threshold(ref: str, of: str, op: str, value: float) -> Model:
    evaluator = {"type": op, "params": [value]}
    return _expr(ref, type="threshold", expression=of, conditions=[{"evaluator": evaluator}])


def _math(ref: str, expression: str) -> Model:
    return _expr(ref, type="math", expression=expression)


@dataclass(frozen=True, slots=True)
class _Built:
    """What a builder returns: data, the condition's refId, and how the rule behaves."""

    data: list[Model]
    condition: str
    summary: str
    for_s: float = 0
    no_data: str = "OK"


def _events_window(settings: Settings) -> int:
    # Twice the evaluation interval, so an event between two evaluations is never missed
    # (it may be seen by two evaluations, which keeps the alert firing one interval longer).
    return 2 * max(duration_s(settings.dashboards.alert_interval), 60)


def _otolith(rule: OtolithAnomalyRule, settings: Settings, ds: str) -> _Built:
    """Flagged otoliths (``flagged`` = 1, score over the model's threshold) in the last two
    evaluation intervals, per instrument. The daemon alerts once per specimen."""
    q = 'SELECT sum("flagged") FROM "otolith" WHERE $timeFilter GROUP BY "instrument"'
    data = [_query("A", q, _events_window(settings), ds), _reduce("B", "A")]
    data.append(_threshold("C", "B", "gt", 0))
    return _Built(data, "C", "An otolith scored over the anomaly model's threshold")


def _new_fish(rule: NewIndividualRule, settings: Settings, ds: str) -> _Built:
    """Fish sightings that enrolled a new individual in the last two evaluation intervals."""
    q = (
        'SELECT count("individual") FROM "fish" WHERE "new_individual" = true '
        'AND $timeFilter GROUP BY "instrument"'
    )
    data = [_query("A", q, _events_window(settings), ds), _reduce("B", "A")]
    data.append(_threshold("C", "B", "gt", 0))
    return _Built(data, "C", "A fish sighting enrolled a new (provisional) individual")


def _share_over(
    part: str,
    whole: str,
    *,
    window_s: int,
    max_share: float,
    minimum: int,
    ds: str,
    summary: str,
) -> _Built:
    """Fires where ``part / whole`` over the last ``window_s`` exceeds ``max_share`` and
    ``whole`` is at least ``minimum`` (per series, e.g. per instrument)."""
    data = [
        _query("A", part, window_s, ds),
        _query("B", whole, window_s, ds),
        _reduce("C", "A"),
        _reduce("D", "B"),
        _math("E", f"$C / $D > {max_share:g} && $D >= {minimum}"),
    ]
    return _Built(data, "E", summary)


def _unknown(rule: UnknownRateRule, settings: Settings, ds: str) -> _Built:
    """sum(unknown_objects) / sum(objects) of plankton frames over the last ``window_s``
    > ``max_share`` with at least ``min_objects`` objects. The daemon slides its window per
    frame; here it slides per evaluation."""
    where = '"task" = \'plankton\' AND $timeFilter GROUP BY "instrument"'
    return _share_over(
        f'SELECT sum("unknown_objects") FROM "frames" WHERE {where}',
        f'SELECT sum("objects") FROM "frames" WHERE {where}',
        window_s=math.ceil(rule.window_s),
        max_share=rule.max_share,
        minimum=rule.min_objects,
        ds=ds,
        summary=f"Over {rule.max_share:.0%} of the objects are unknown",
    )


def _quality(rule: FrameQualityRule, settings: Settings, ds: str) -> _Built:
    """Share of bad full plankton frames (sharpness < ``min_sharpness``, saturated_share >
    ``max_saturated_share`` or no objects) > ``max_share`` with at least ``min_frames``
    frames. Approximation: the daemon looks at the last ``window_frames`` frames; InfluxQL
    cannot, so the last ``FRAME_QUALITY_WINDOW_S`` seconds are used. Full frames are those
    with a ``sharpness`` field. An instrument with no bad frame has no series in A; the
    result then has no instance for it, which Grafana treats as normal."""
    bad = (
        f'("sharpness" < {rule.min_sharpness:g} OR '
        f'"saturated_share" > {rule.max_saturated_share:g} OR "objects" = 0)'
    )
    head = 'SELECT count("sharpness") FROM "frames" WHERE "task" = \'plankton\''
    tail = 'AND $timeFilter GROUP BY "instrument"'
    return _share_over(
        f"{head} AND {bad} {tail}",
        f"{head} {tail}",
        window_s=FRAME_QUALITY_WINDOW_S,
        max_share=rule.max_share,
        minimum=rule.min_frames,
        ds=ds,
        summary=f"Over {rule.max_share:.0%} of the full frames are bad",
    )


def _silent(rule: InstrumentSilentRule, settings: Settings, ds: str) -> _Built:
    """Frames per instrument in ``GROUP BY time(silent_s)`` buckets (``fill(0)``) over the
    last hours; the last bucket < 1 for ``silent_s`` (the rule's pending period).
    Approximation: buckets are aligned to the epoch, so the alert fires after between one
    and two ``silent_s`` of silence (the daemon: exactly one); the pending period keeps a
    just-started empty bucket from firing. "Seen before" means a frame in the lookback
    (``max(SILENT_LOOKBACK_S, 4 x silent_s)``). No data at all (every instrument silent for
    the whole lookback) counts as alerting."""
    bucket = math.ceil(rule.silent_s)
    lookback = max(SILENT_LOOKBACK_S, 4 * bucket)
    q = (
        'SELECT count("objects") FROM "frames" WHERE $timeFilter '
        f'GROUP BY time({bucket}s), "instrument" fill(0)'
    )
    data = [_query("A", q, lookback, ds), _reduce("B", "A"), _threshold("C", "B", "lt", 1)]
    summary = f"An instrument sent no frame for {format_duration(bucket)}"
    return _Built(data, "C", summary, for_s=bucket, no_data="Alerting")


def _bloom(rule: PlanktonBloomRule, settings: Settings, ds: str) -> _Built:
    """The daemon's own bloom alerts (``alerts`` points with this rule's name): a taxon over
    ``factor`` x the rolling median of its previous windows cannot be written in InfluxQL,
    so Grafana re-raises what the daemon computed, per instrument and taxon."""
    q = (
        f'SELECT count("value") FROM "alerts" WHERE "rule" = {_quote(rule.name)} '
        'AND $timeFilter GROUP BY "instrument", "taxon"'
    )
    data = [_query("A", q, _events_window(settings), ds), _reduce("B", "A")]
    data.append(_threshold("C", "B", "gt", 0))
    summary = f"A plankton taxon over {rule.factor:g} x its rolling median (daemon alert)"
    return _Built(data, "C", summary)


_BUILDERS: dict[str, Callable[[Any, Settings, str], _Built]] = {
    "otolith_anomaly": _otolith,
    "new_individual": _new_fish,
    "unknown_rate": _unknown,
    "frame_quality": _quality,
    "instrument_silent": _silent,
    "plankton_bloom": _bloom,
}


def _description(rule: Rule) -> str:
    params = rule.model_dump(exclude={"name", "kind", "severity", "cooldown_s"}, mode="json")
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return (
        f"Mirrors the seawatch daemon rule {rule.name} ({rule.kind}{': ' if shown else ''}"
        f"{shown}). The daemon's own alerts are in the InfluxDB measurement 'alerts'."
    )


def alert_rule(rule: Rule, settings: Settings, *, receiver: str | None) -> Model:
    """One Grafana alert rule (the provisioning API's ``ProvisionedAlertRule``)."""
    built = _BUILDERS[rule.kind](rule, settings, settings.dashboards.datasource_uid)
    model: Model = {
        "uid": rule_uid(rule.name),
        "title": rule.name,
        "condition": built.condition,
        "data": built.data,
        "folderUID": settings.dashboards.grafana.folder_uid,
        "ruleGroup": RULE_GROUP,
        "for": format_duration(built.for_s),
        "noDataState": built.no_data,
        "execErrState": "Error",
        "isPaused": False,
        "orgID": 1,
        "labels": {"severity": rule.severity, "seawatch_rule": rule.name, "kind": rule.kind},
        "annotations": {
            "summary": built.summary,
            "description": _description(rule),
        },
    }
    if receiver is not None:
        model["notification_settings"] = {"receiver": receiver}
    return model


def alert_rules(settings: Settings) -> list[Model]:
    """A Grafana rule per configured daemon rule (none when alerts are disabled), routed to
    the seawatch contact point when webhooks are configured."""
    if not settings.alerts.enabled:
        return []
    receiver = CONTACT_POINT if settings.alerts.webhooks else None
    return [alert_rule(r, settings, receiver=receiver) for r in settings.alerts.rules]


def contact_point_uid(url: str) -> str:
    """A stable uid for the webhook integration of ``url``."""
    return "seawatch-webhook-" + hashlib.sha1(url.encode()).hexdigest()[:12]


def webhook_receiver(hook: WebhookSettings, *, credentials: str | None = None) -> Model:
    """One webhook integration of the contact point. An ``Authorization`` header becomes
    Grafana's authorization scheme + credentials (``credentials`` overrides the secret, e.g.
    with an environment reference); other headers are not mirrored (see
    :func:`unmirrored_headers`)."""
    settings: Model = {"url": hook.url, "httpMethod": "POST"}
    for key, value in hook.headers.items():
        if key.lower() == "authorization":
            scheme, _, secret = value.partition(" ")
            settings["authorization_scheme"] = scheme if secret else "Bearer"
            settings["authorization_credentials"] = credentials or (secret or scheme)
    return {
        "uid": contact_point_uid(hook.url),
        "name": CONTACT_POINT,
        "type": "webhook",
        "settings": settings,
        "disableResolveMessage": False,
    }


def unmirrored_headers(settings: Settings) -> list[str]:
    """Webhook header names Grafana's webhook integration gets no equivalent of."""
    return sorted(
        {k for h in settings.alerts.webhooks for k in h.headers if k.lower() != "authorization"}
    )


def contact_points(settings: Settings) -> list[Model]:
    """The seawatch contact point as the API lists it: one webhook integration per
    ``alerts.webhooks`` entry; empty when no webhook is configured (or alerts are off)."""
    if not settings.alerts.enabled:
        return []
    seen: dict[str, Model] = {}
    for hook in settings.alerts.webhooks:
        seen.setdefault(hook.url, webhook_receiver(hook))
    return list(seen.values())


__all__ = [
    "CONTACT_POINT",
    "EXPRESSION_UID",
    "FRAME_QUALITY_WINDOW_S",
    "RULE_GROUP",
    "alert_rule",
    "alert_rules",
    "contact_point_uid",
    "contact_points",
    "duration_s",
    "format_duration",
    "rule_uid",
    "unmirrored_headers",
    "webhook_receiver",
]
