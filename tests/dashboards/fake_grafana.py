"""A minimal Grafana for the provisioning contract test (no Grafana server can run here).

A ``ThreadingHTTPServer`` handler keeps folders, datasources, dashboards, alert rules, rule
groups and contact points in memory at Grafana's real API paths, answers like Grafana, checks
every request's method + path, body shape and ``Authorization: Bearer`` header, records each
request and collects shape problems in ``violations``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

Body = dict[str, Any]
Answer = tuple[int, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any
    authorization: str | None


def _shape(body: Any, spec: dict[str, type | tuple[type, ...]], what: str) -> list[str]:
    if not isinstance(body, dict):
        return [f"{what}: body is not a JSON object"]
    return [
        f"{what}: {key!r} missing or not {kind}"
        for key, kind in spec.items()
        if not isinstance(body.get(key), kind)
    ]


RULE_SPEC = {
    "uid": str,
    "title": str,
    "condition": str,
    "data": list,
    "folderUID": str,
    "ruleGroup": str,
    "for": str,
    "noDataState": str,
    "execErrState": str,
    "orgID": int,
    "labels": dict,
    "annotations": dict,
    "isPaused": bool,
}
QUERY_SPEC = {"refId": str, "datasourceUid": str, "relativeTimeRange": dict, "model": dict}
DS_SPEC = {"uid": str, "name": str, "type": str, "access": str, "url": str, "jsonData": dict}


class FakeGrafana:
    """The in-memory Grafana; ``requests`` and ``violations`` are what the tests inspect."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.folders: dict[str, Body] = {}
        self.datasources: dict[str, Body] = {}
        self.dashboards: dict[str, Body] = {}
        self.rules: dict[str, Body] = {}
        self.intervals: dict[tuple[str, str], int] = {}
        self.contacts: dict[str, Body] = {}
        self._ids = 0
        p = "/api/v1/provisioning"
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            ("GET", re.compile(r"/api/folders/([^/]+)"), self.get_folder),
            ("POST", re.compile(r"/api/folders"), self.post_folder),
            ("PUT", re.compile(r"/api/folders/([^/]+)"), self.put_folder),
            ("GET", re.compile(r"/api/datasources/uid/([^/]+)"), self.get_datasource),
            ("POST", re.compile(r"/api/datasources"), self.post_datasource),
            ("PUT", re.compile(r"/api/datasources/uid/([^/]+)"), self.put_datasource),
            ("GET", re.compile(r"/api/dashboards/uid/([^/]+)"), self.get_dashboard),
            ("POST", re.compile(r"/api/dashboards/db"), self.post_dashboard),
            ("GET", re.compile(p + r"/alert-rules/([^/]+)"), self.get_rule),
            ("POST", re.compile(p + r"/alert-rules"), self.post_rule),
            ("PUT", re.compile(p + r"/alert-rules/([^/]+)"), self.put_rule),
            ("DELETE", re.compile(p + r"/alert-rules/([^/]+)"), self.delete_rule),
            ("GET", re.compile(p + r"/folder/([^/]+)/rule-groups/([^/]+)"), self.get_group),
            ("PUT", re.compile(p + r"/folder/([^/]+)/rule-groups/([^/]+)"), self.put_group),
            ("GET", re.compile(p + r"/contact-points"), self.get_contacts),
            ("POST", re.compile(p + r"/contact-points"), self.post_contact),
            ("PUT", re.compile(p + r"/contact-points/([^/]+)"), self.put_contact),
            ("DELETE", re.compile(p + r"/contact-points/([^/]+)"), self.delete_contact),
        ]

    # -- dispatch ---------------------------------------------------------------------
    def handle(self, method: str, url: str, body: Any, auth: str | None) -> Answer:
        parts = urlsplit(url)
        self.requests.append(Request(method, parts.path, body, auth))
        if auth != f"Bearer {self.token}":
            return 401, {"message": "invalid API key"}
        for verb, pattern, handler in self.routes:
            match = pattern.fullmatch(parts.path)
            if verb == method and match:
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                return handler(*match.groups(), body=body, query=query)
        self.violations.append(f"unknown endpoint {method} {parts.path}")
        return 404, {"message": "Not found"}

    def bad(self, problems: list[str]) -> Answer | None:
        if not problems:
            return None
        self.violations.extend(problems)
        return 400, {"message": "; ".join(problems)}

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- folders ----------------------------------------------------------------------
    def get_folder(self, uid: str, **_: Any) -> Answer:
        return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "nf"})

    def post_folder(self, *, body: Any, **_: Any) -> Answer:
        if err := self.bad(_shape(body, {"title": str, "uid": str}, "POST folder")):
            return err
        if body["uid"] in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        self.folders[body["uid"]] = {**body, "id": self.next_id(), "version": 1, "url": "/f"}
        return 200, self.folders[body["uid"]]

    def put_folder(self, uid: str, *, body: Any, **_: Any) -> Answer:
        if err := self.bad(_shape(body, {"title": str}, "PUT folder")):
            return err
        folder = self.folders[uid]
        folder.update(title=body["title"], version=folder["version"] + 1)
        return 200, folder

    # -- datasources ------------------------------------------------------------------
    def get_datasource(self, uid: str, **_: Any) -> Answer:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        stored = dict(self.datasources[uid])
        secrets = stored.pop("secureJsonData", {})
        stored["secureJsonFields"] = {key: True for key in secrets}
        return 200, stored

    def _ds_problems(self, body: Any, what: str) -> list[str]:
        problems = _shape(body, DS_SPEC, what)
        secure = body.get("secureJsonData", {}) if isinstance(body, dict) else {}
        if not isinstance(secure, dict) or not all(isinstance(v, str) for v in secure.values()):
            problems.append(f"{what}: secureJsonData must map names to strings")
        return problems

    def post_datasource(self, *, body: Any, **_: Any) -> Answer:
        if err := self.bad(self._ds_problems(body, "POST datasource")):
            return err
        stored = {**body, "id": self.next_id(), "orgId": 1, "version": 1, "readOnly": False}
        self.datasources[body["uid"]] = stored
        return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource added"}

    def put_datasource(self, uid: str, *, body: Any, **_: Any) -> Answer:
        if err := self.bad(self._ds_problems(body, "PUT datasource")):
            return err
        old = self.datasources[uid]
        secrets = body.get("secureJsonData") or old.get("secureJsonData") or {}
        self.datasources[uid] = {
            **old,
            **body,
            "secureJsonData": secrets,
            "version": old["version"] + 1,
        }
        return 200, {"message": "Datasource updated", "id": old["id"]}

    # -- dashboards -------------------------------------------------------------------
    def get_dashboard(self, uid: str, **_: Any) -> Answer:
        if uid not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        return 200, self.dashboards[uid]

    def post_dashboard(self, *, body: Any, **_: Any) -> Answer:
        spec = {"dashboard": dict, "folderUid": str, "overwrite": bool}
        problems = _shape(body, spec, "POST dashboard")
        if not problems:
            spec = {"uid": str, "title": str, "panels": list, "schemaVersion": int}
            problems = _shape(body["dashboard"], spec, "dashboard model")
            if body["folderUid"] not in self.folders:
                problems.append("POST dashboard: folderUid names no folder")
        if err := self.bad(problems):
            return err
        model = body["dashboard"]
        old = self.dashboards.get(model["uid"], {}).get("dashboard", {})
        version = old.get("version", 0) + 1
        saved = {**model, "id": old.get("id") or self.next_id(), "version": version}
        self.dashboards[model["uid"]] = {
            "dashboard": saved,
            "meta": {"folderUid": body["folderUid"], "version": version},
        }
        return 200, {"uid": model["uid"], "status": "success", "version": version}

    # -- alert rules ------------------------------------------------------------------
    def _rule_problems(self, body: Any, what: str) -> list[str]:
        problems = _shape(body, RULE_SPEC, what)
        if problems:
            return problems
        refs = set()
        for query in body["data"]:
            problems += _shape(query, QUERY_SPEC, f"{what} data")
            ds = query.get("datasourceUid")
            if ds != "__expr__" and ds not in self.datasources:
                problems.append(f"{what}: datasourceUid {ds!r} names no datasource")
            refs.add(query.get("refId"))
        if body["condition"] not in refs:
            problems.append(f"{what}: condition {body['condition']!r} is no refId")
        if body["folderUID"] not in self.folders:
            problems.append(f"{what}: folderUID names no folder")
        receiver = (body.get("notification_settings") or {}).get("receiver")
        names = {c["name"] for c in self.contacts.values()}
        if receiver is not None and receiver not in names:
            problems.append(f"{what}: receiver {receiver!r} is no contact point")
        return problems

    def _store_rule(self, body: Body) -> Body:
        old = self.rules.get(body["uid"], {})
        self.rules[body["uid"]] = {
            **body,
            "id": old.get("id") or self.next_id(),
            "updated": "2026-01-01T00:00:00Z",
            "provenance": "api",
            "for": _go_duration(body["for"]),
        }
        self.intervals.setdefault((body["folderUID"], body["ruleGroup"]), 60)
        return self.rules[body["uid"]]

    def get_rule(self, uid: str, **_: Any) -> Answer:
        return (200, self.rules[uid]) if uid in self.rules else (404, None)

    def post_rule(self, *, body: Any, **_: Any) -> Answer:
        if err := self.bad(self._rule_problems(body, "POST alert rule")):
            return err
        return 201, self._store_rule(body)

    def put_rule(self, uid: str, *, body: Any, **_: Any) -> Answer:
        if err := self.bad(self._rule_problems(body, "PUT alert rule")):
            return err
        return (200, self._store_rule(body)) if uid in self.rules else (404, None)

    def delete_rule(self, uid: str, **_: Any) -> Answer:
        self.rules.pop(uid)
        return 204, None

    def get_group(self, folder: str, group: str, **_: Any) -> Answer:
        key = (folder, group)
        rules = [r for r in self.rules.values() if (r["folderUID"], r["ruleGroup"]) == key]
        if not rules:
            return 404, {"message": "rule group not found"}
        interval = self.intervals[(folder, group)]
        return 200, {"title": group, "folderUid": folder, "interval": interval, "rules": rules}

    def put_group(self, folder: str, group: str, *, body: Any, **_: Any) -> Answer:
        spec = {"title": str, "folderUid": str, "interval": int, "rules": list}
        if err := self.bad(_shape(body, spec, "PUT rule group")):
            return err
        self.intervals[(folder, group)] = body["interval"]
        return 200, body

    # -- contact points ---------------------------------------------------------------
    def get_contacts(self, *, query: dict[str, str], **_: Any) -> Answer:
        listed = []
        for contact in self.contacts.values():
            if query.get("name") in (None, contact["name"]):
                settings = {
                    k: "[REDACTED]" if k == "authorization_credentials" else v
                    for k, v in contact["settings"].items()
                }
                listed.append({**contact, "settings": settings, "provenance": "api"})
        return 200, listed

    def post_contact(self, *, body: Any, **_: Any) -> Answer:
        spec = {"uid": str, "name": str, "type": str, "settings": dict}
        if err := self.bad(_shape(body, spec, "POST contact point")):
            return err
        self.contacts[body["uid"]] = body
        return 202, body

    def put_contact(self, uid: str, *, body: Any, **_: Any) -> Answer:
        spec = {"name": str, "type": str, "settings": dict}
        if err := self.bad(_shape(body, spec, "PUT contact point")):
            return err
        self.contacts[uid] = {**body, "uid": uid}
        return 202, body

    def delete_contact(self, uid: str, **_: Any) -> Answer:
        self.contacts.pop(uid)
        return 202, {"message": "contactpoint deleted"}

    # -- what the tests read ----------------------------------------------------------
    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def clear(self) -> None:
        self.requests.clear()


def _go_duration(text: str) -> str:
    # Grafana answers durations in Prometheus form; "5m" stays "5m", "300s" becomes "5m".
    from seawatch.dashboards.alert_rules import duration_s, format_duration

    return format_duration(duration_s(text))


def _handler(fake: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                fake.violations.append(f"{self.command} {self.path}: body is not JSON")
                body = None
            status, answer = fake.handle(
                self.command, self.path, body, self.headers.get("Authorization")
            )
            data = b"" if status == 204 else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
