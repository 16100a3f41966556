"""A small InfluxQL client over HTTP ``/query``: the one query language that InfluxDB 1.x,
2.x (through a DBRP mapping) and 3.x all answer, and that the dashboards use.

Used by the HTML report (reading from InfluxDB) and by the tests that run every panel's
query against a real server. Standard library only, so the report works wherever the
daemon does.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from seawatch.contracts.errors import SeawatchError


class InfluxQLError(SeawatchError):
    """The server refused a query, or could not be reached."""


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a result: its measurement, group-by tags, columns and rows."""

    name: str
    columns: list[str]
    values: list[list[Any]]
    tags: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        """All values of one column."""
        index = self.columns.index(name)
        return [row[index] for row in self.values]

    def rows(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


class InfluxQLClient:
    """Runs InfluxQL statements against ``url`` (``/query``) in ``database``.

    ``token`` is sent as ``Authorization: Token ...`` (2.x/3.x, and 1.x with auth off it is
    ignored); ``username``/``password`` as HTTP basic auth for 1.x with auth on.
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif username is not None:
            pair = f"{username}:{password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def _call(self, q: str, *, post: bool) -> dict[str, Any]:
        params = {"db": self.database, "q": q, "epoch": "ns"}
        encoded = urllib.parse.urlencode(params)
        if post:
            request = urllib.request.Request(
                f"{self.url}/query",
                data=encoded.encode(),
                headers={**self._headers, "Content-Type": "application/x-www-form-urlencoded"},
                method="POST",
            )
        else:
            request = urllib.request.Request(f"{self.url}/query?{encoded}", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise InfluxQLError(f"InfluxQL query refused ({exc.code}): {detail}\n  {q}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise InfluxQLError(f"cannot reach InfluxDB at {self.url}: {exc}") from exc

    def query(self, q: str) -> list[Series]:
        """Run one read statement; the series of its result (empty when nothing matched)."""
        results = self._call(q, post=False).get("results", [])
        series: list[Series] = []
        for result in results:
            if "error" in result:
                raise InfluxQLError(f"InfluxQL error: {result['error']}\n  {q}")
            for item in result.get("series", []):
                series.append(
                    Series(
                        name=item.get("name", ""),
                        columns=list(item.get("columns", [])),
                        values=[list(row) for row in item.get("values", [])],
                        tags=dict(item.get("tags") or {}),
                    )
                )
        return series

    def execute(self, q: str) -> None:
        """Run a statement that changes something (``CREATE DATABASE``) with POST."""
        for result in self._call(q, post=True).get("results", []):
            if "error" in result:
                raise InfluxQLError(f"InfluxQL error: {result['error']}\n  {q}")


__all__ = ["InfluxQLClient", "InfluxQLError", "Series"]
