"""``seawatch dashboards apply``: provision a running Grafana through grafana-client.

Ensures, in this order: the folder, the InfluxDB datasource, every dashboard (after
``check_dashboard``), the seawatch contact point (one webhook integration per
``alerts.webhooks`` entry), the alert rules and their group's interval. Idempotent: each
object is read first and written only when it differs from the wanted model. Comparison is
"every wanted field has the wanted value" (server-added fields such as id, version, updated
and provenance are ignored), so a field dropped from the wanted model is not noticed.
Secrets are write-only in Grafana: a changed InfluxDB token or webhook credential is not
detected (re-create the object, or change something else, to push it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from seawatch.config import Settings
from seawatch.contracts.errors import SeawatchError
from seawatch.dashboards import alert_rules as ar
from seawatch.dashboards.datasource import TOKEN_HEADER, datasource_model

TOKEN_SETTING = "dashboards.grafana.token (SEAWATCH_DASHBOARDS__GRAFANA__TOKEN)"
_REDACTED = "[REDACTED]"


class ProvisioningError(SeawatchError):
    """Grafana cannot be reached, refuses the token, or refuses an object."""


@dataclass(frozen=True, slots=True)
class Change:
    """What apply did to one object: created, updated, unchanged or deleted."""

    kind: str
    name: str
    action: str


@dataclass
class ApplyReport:
    """Every object apply looked at, and notes (what was skipped and why)."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, name: str, action: str) -> None:
        """Record one object's outcome."""
        self.changes.append(Change(kind, name, action))

    def count(self, action: str) -> int:
        """How many objects had ``action``."""
        return sum(c.action == action for c in self.changes)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return any(c.action != "unchanged" for c in self.changes)

    def summary(self) -> str:
        """One line: what changed, or that nothing did."""
        if not self.changed:
            return f"nothing changed ({len(self.changes)} objects up to date)"
        parts = [
            f"{self.count(a)} {a}"
            for a in ("created", "updated", "deleted", "unchanged")
            if self.count(a)
        ]
        return ", ".join(parts)


def same(wanted: Any, current: Any) -> bool:
    """Whether ``current`` has every field of ``wanted`` with its value (recursively; lists
    item by item; a redacted secret matches any value; ``for`` durations by seconds)."""
    if isinstance(wanted, dict):
        if not isinstance(current, dict):
            return False
        for key, value in wanted.items():
            if value is None:
                continue
            if key == "for" and isinstance(value, str) and isinstance(current.get(key), str):
                if _seconds(value) != _seconds(current[key]):
                    return False
            elif not same(value, current.get(key)):
                return False
        return True
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(wanted) == len(current)
            and all(same(w, c) for w, c in zip(wanted, current, strict=True))
        )
    if current == _REDACTED and isinstance(wanted, str):
        return True
    return bool(wanted == current)


def _seconds(text: str) -> int | str:
    try:
        return ar.duration_s(text)
    except ValueError:
        return text


def _api_url(url: str) -> str:
    # grafana-client appends "api" to the path prefix as is: it must end with a slash.
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") or not parts.path else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _shown_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Grafana:
    """grafana-client calls with Grafana's errors turned into :class:`ProvisioningError`."""

    def __init__(self, settings: Settings) -> None:
        from grafana_client import GrafanaApi

        g = settings.dashboards.grafana
        if not g.url:
            msg = (
                "dashboards.grafana.url is not set; set it in the YAML file or "
                "SEAWATCH_DASHBOARDS__GRAFANA__URL (e.g. http://grafana:3000)"
            )
            raise ProvisioningError(msg)
        self.shown = _shown_url(g.url)
        token = g.token.get_secret_value() or None
        self.api = GrafanaApi.from_url(_api_url(g.url), credential=token, timeout=g.timeout_s)

    def call(self, what: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        """Run one API call; None for a 404 when ``missing_ok``."""
        import niquests.exceptions
        from grafana_client.client import GrafanaClientError, GrafanaException

        try:
            return fn(*args)
        except GrafanaClientError as exc:
            if exc.status_code == 404 and missing_ok:
                return None
            if exc.status_code in (401, 403):
                verb = "rejected" if exc.status_code == 401 else "lacks permission for"
                msg = (
                    f"Grafana at {self.shown} {verb} the token ({exc.status_code}) while "
                    f"{what}; set a service-account token with the Admin role in "
                    f"{TOKEN_SETTING}"
                )
                raise ProvisioningError(msg) from None
            raise ProvisioningError(f"Grafana refused {what}: {exc.message}") from None
        except GrafanaException as exc:
            raise ProvisioningError(f"Grafana failed {what}: {exc.message}") from None
        except niquests.exceptions.RequestException as exc:
            msg = (
                f"cannot reach Grafana at {self.shown} ({type(exc).__name__}); check "
                "dashboards.grafana.url (SEAWATCH_DASHBOARDS__GRAFANA__URL) and that it runs"
            )
            raise ProvisioningError(msg) from None
        except ValueError as exc:  # a body that is not JSON: not Grafana, or a proxy page
            msg = f"unexpected answer from {self.shown} while {what}: {exc}"
            raise ProvisioningError(msg) from None


def _folder(gf: _Grafana, settings: Settings, report: ApplyReport) -> None:
    g = settings.dashboards.grafana
    api = gf.api.folder
    what = f"reading folder {g.folder_uid}"
    current = gf.call(what, api.get_folder, g.folder_uid, missing_ok=True)
    if current is None:
        gf.call("creating the folder", api.create_folder, g.folder_title, g.folder_uid)
        report.add("folder", g.folder_title, "created")
    elif current.get("title") != g.folder_title:
        update = api.update_folder
        gf.call("renaming the folder", lambda: update(g.folder_uid, g.folder_title, overwrite=True))
        report.add("folder", g.folder_title, "updated")
    else:
        report.add("folder", g.folder_title, "unchanged")


def _datasource(gf: _Grafana, settings: Settings, report: ApplyReport) -> None:
    wanted = datasource_model(settings)
    uid, api = wanted["uid"], gf.api.datasource
    current = gf.call(f"reading datasource {uid}", api.get_datasource_by_uid, uid, missing_ok=True)
    if current is None:
        gf.call("creating the datasource", api.create_datasource, wanted)
        report.add("datasource", wanted["name"], "created")
        return
    compared = {k: v for k, v in wanted.items() if k != "secureJsonData"}
    secret_missing = "secureJsonData" in wanted and not (current.get("secureJsonFields") or {}).get(
        TOKEN_HEADER
    )
    if same(compared, current) and not secret_missing:
        report.add("datasource", wanted["name"], "unchanged")
        return
    gf.call("updating the datasource", api.update_datasource_by_uid, uid, wanted)
    report.add("datasource", wanted["name"], "updated")


def checked_dashboards(settings: Settings) -> list[dict[str, Any]]:
    """The dashboards' JSON models, each checked (:class:`DashboardError` on a problem)."""
    from seawatch.dashboards.catalog import build_dashboards
    from seawatch.dashboards.checks import check_dashboard

    models = build_dashboards(settings)
    for model in models:
        check_dashboard(model, {settings.dashboards.datasource_uid})
    return models


def _dashboards(
    gf: _Grafana, settings: Settings, models: list[dict[str, Any]], report: ApplyReport
) -> None:
    folder_uid, api = settings.dashboards.grafana.folder_uid, gf.api.dashboard
    for model in models:
        wanted = {k: v for k, v in model.items() if k not in ("id", "version")}
        uid, title = wanted["uid"], wanted["title"]
        current = gf.call(f"reading dashboard {uid}", api.get_dashboard, uid, missing_ok=True)
        if (
            current is not None
            and same(wanted, current.get("dashboard"))
            and ((current.get("meta") or {}).get("folderUid") == folder_uid)
        ):
            report.add("dashboard", title, "unchanged")
            continue
        body = {
            "dashboard": wanted,
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "seawatch dashboards apply",
        }
        gf.call(f"saving dashboard {uid}", api.update_dashboard, body)
        report.add("dashboard", title, "created" if current is None else "updated")


def _contact_points(gf: _Grafana, settings: Settings, report: ApplyReport) -> list[str]:
    """Create or update the wanted integrations; the uids of stale ones (deleted later)."""
    api = gf.api.alertingprovisioning
    wanted = ar.contact_points(settings)
    listed = gf.call("listing contact points", api.get_contactpoints, ar.CONTACT_POINT) or []
    current = {c.get("uid"): c for c in listed if c.get("name") == ar.CONTACT_POINT}
    if not wanted:
        report.notes.append(
            "no alerts.webhooks configured: no contact point; the rules follow the "
            "organisation's default notification policy"
        )
    for item in wanted:
        name = f"{ar.CONTACT_POINT} webhook {item['settings']['url']}"
        have = current.get(item["uid"])
        if have is None:
            gf.call("creating the contact point", api.create_contactpoint, item)
            report.add("contact point", name, "created")
        elif same(item, have):
            report.add("contact point", name, "unchanged")
        else:
            gf.call("updating the contact point", api.update_contactpoint, item["uid"], item)
            report.add("contact point", name, "updated")
    headers = ar.unmirrored_headers(settings)
    if wanted and headers:
        report.notes.append(
            "webhook headers other than Authorization are not mirrored to Grafana: "
            + ", ".join(headers)
        )
    wanted_uids = {item["uid"] for item in wanted}
    return [uid for uid in current if uid not in wanted_uids]


def _rules(gf: _Grafana, settings: Settings, report: ApplyReport) -> None:
    api = gf.api.alertingprovisioning
    wanted = ar.alert_rules(settings)
    for rule in wanted:
        uid, title = rule["uid"], rule["title"]
        current = gf.call(f"reading alert rule {uid}", api.get_alertrule, uid, missing_ok=True)
        if current is None:
            gf.call(f"creating alert rule {title}", api.create_alertrule, rule)
            report.add("alert rule", title, "created")
        elif same({k: v for k, v in rule.items() if k != "orgID"}, current) and (
            "notification_settings" in rule or not current.get("notification_settings")
        ):
            report.add("alert rule", title, "unchanged")
        else:
            gf.call(f"updating alert rule {title}", api.update_alertrule, uid, rule)
            report.add("alert rule", title, "updated")
    folder_uid = settings.dashboards.grafana.folder_uid
    group = gf.call(
        "reading the rule group", api.get_rule_group, folder_uid, ar.RULE_GROUP, missing_ok=True
    )
    if group is None:
        return
    wanted_uids = {r["uid"] for r in wanted}
    for stale in [r for r in group.get("rules") or [] if r.get("uid") not in wanted_uids]:
        gf.call(f"deleting alert rule {stale.get('title')}", api.delete_alertrule, stale["uid"])
        report.add("alert rule", str(stale.get("title")), "deleted")
    interval = ar.duration_s(settings.dashboards.alert_interval)
    if wanted and group.get("interval") != interval:
        kept = [r for r in group.get("rules") or [] if r.get("uid") in wanted_uids]
        body = {**group, "interval": interval, "rules": kept}
        gf.call(
            "setting the rule group's interval",
            api.update_rule_group,
            folder_uid,
            ar.RULE_GROUP,
            body,
        )
        report.add("rule group", f"{ar.RULE_GROUP} (every {interval} s)", "updated")


def apply(settings: Settings, *, echo: Callable[[str], None] | None = None) -> ApplyReport:
    """Bring Grafana in line with the settings; what was created, updated or left alone.

    ``echo`` receives one line per object as it is handled (never a secret).
    """
    gf = _Grafana(settings)
    models = checked_dashboards(settings)  # every check passes before anything is written
    report = ApplyReport()
    done = 0

    def progress() -> None:
        nonlocal done
        if echo is not None:
            for c in report.changes[done:]:
                echo(f"{c.action:>9}  {c.kind}: {c.name}")
        done = len(report.changes)

    _folder(gf, settings, report)
    _datasource(gf, settings, report)
    progress()
    _dashboards(gf, settings, models, report)
    progress()
    stale = _contact_points(gf, settings, report)
    _rules(gf, settings, report)
    api = gf.api.alertingprovisioning
    for uid in stale:
        gf.call("deleting a stale contact point", api.delete_contactpoint, uid)
        report.add("contact point", f"{ar.CONTACT_POINT} ({uid})", "deleted")
    progress()
    return report


__all__ = [
    "TOKEN_SETTING",
    "ApplyReport",
    "Change",
    "ProvisioningError",
    "apply",
    "checked_dashboards",
    "same",
]
