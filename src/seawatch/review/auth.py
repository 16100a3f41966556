"""What the review station's routes share: the opened station (store, crops, accounts,
taxonomy), the session dependency and the role checks (each write also needs the session's
CSRF token)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from seawatch.review.accounts import Accounts, Role, Session
from seawatch.review.merge_reviews import ensure_review_tables
from seawatch.review.taxonomy import Taxonomy
from seawatch.review_settings import ReviewSettings
from seawatch.storage.crop_store import CropStore
from seawatch.storage.local_store import ensure_schema

COOKIE = "seawatch_session"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """Raised by the auth dependency for a browser without a session."""


class Station:
    """What the routes share: the store, the crops, the accounts, the taxonomy and the
    settings. ``db`` (writes) and ``read`` are connections of the calling thread: the app
    serves requests on a pool of threads, and a write transaction must never take in
    another thread's statements."""

    def __init__(
        self,
        settings: ReviewSettings,
        store_path: Path,
        crops: CropStore | None,
        accounts: Accounts,
        evidence_root: Path,
    ) -> None:
        self.settings = settings
        self.store_path = store_path
        self.crops = crops
        self.accounts = accounts
        self.evidence_root = evidence_root
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        ensure_schema(self.db)
        ensure_review_tables(self.db)  # the fish merges to confirm (merge_reviews.py)
        self.taxonomy = Taxonomy(settings.taxa, lambda: self.db)

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if readonly:
            uri = f"file:{self.store_path}?mode=ro"
            con = sqlite3.connect(uri, uri=True, timeout=15.0, check_same_thread=False)
            con.execute("PRAGMA query_only=1")
        else:
            con = sqlite3.connect(
                self.store_path, timeout=15.0, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._opened.append(con)
        return con

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's write connection."""
        con = getattr(self._local, "db", None)
        if con is None:
            con = self._local.db = self._connect(readonly=False)
        return con

    @property
    def read(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        con = getattr(self._local, "read", None)
        if con is None:
            con = self._local.read = self._connect(readonly=True)
        return con

    def close(self) -> None:
        with self._lock:
            for con in self._opened:
                con.close()
            self._opened.clear()
        for closable in (self.crops, self.accounts):
            if closable is not None:
                closable.close()


def open_station(
    settings: ReviewSettings,
    store_path: Path,
    crops_path: Path | None,
    accounts_path: Path,
    evidence_root: Path,
) -> Station:
    """Connect to the local store (creating the review tables), the crops and accounts."""
    crops = None
    if crops_path is not None and crops_path.is_file():
        crops = CropStore(crops_path, readonly=True)
    accounts = Accounts(
        accounts_path,
        session_s=settings.session_hours * 3600,
        attempts=settings.login_attempts,
        window_s=settings.login_window_s,
    )
    return Station(settings, store_path, crops, accounts, evidence_root)


def current_session(request: Request) -> Session:
    """The request's session; a page without one goes to the login, an API call gets 401."""
    station: Station = request.app.state.station
    session = station.accounts.session(request.cookies.get(COOKIE))
    if session is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(401, "log in first")
        raise LoginRequired
    return session


LoggedIn = Annotated[Session, Depends(current_session)]


def need(role: Role):
    """A dependency: the session, if its role is at least ``role``; 403 otherwise. Writes
    (POST) also need the session's CSRF token in the ``X-CSRF-Token`` header."""

    def check(request: Request, session: LoggedIn) -> Session:
        if session.role < role:
            raise HTTPException(403, f"needs the {role.name.lower()} role")
        if request.method == "POST" and request.headers.get(CSRF_HEADER) != session.csrf:
            raise HTTPException(403, "missing or wrong CSRF token; reload the page")
        return session

    return check


Viewer = Annotated[Session, Depends(need(Role.VIEWER))]
Annotator = Annotated[Session, Depends(need(Role.ANNOTATOR))]
Reviewer = Annotated[Session, Depends(need(Role.REVIEWER))]
Admin = Annotated[Session, Depends(need(Role.ADMIN))]


__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "Admin",
    "Annotator",
    "LoggedIn",
    "LoginRequired",
    "Reviewer",
    "Station",
    "Viewer",
    "current_session",
    "need",
    "open_station",
]
