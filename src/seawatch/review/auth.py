"""What the review station's routes share: the opened station (store, crops, accounts,
taxonomy), the session dependency and the role checks (each write also needs the session's
CSRF token)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from seawatch.review.accounts import Accounts, Role, Session
from seawatch.review.taxonomy import Taxonomy
from seawatch.review_settings import ReviewSettings
from seawatch.storage.crop_store import CropStore
from seawatch.storage.local_store import ensure_schema

COOKIE = "seawatch_session"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """Raised by the auth dependency for a browser without a session."""


@dataclass
class Station:
    """What the routes share: the store (one connection for writes, one for reads), the
    crops, the accounts, the taxonomy and the settings."""

    settings: ReviewSettings
    db: sqlite3.Connection
    read: sqlite3.Connection
    crops: CropStore | None
    accounts: Accounts
    taxonomy: Taxonomy
    evidence_root: Path

    def close(self) -> None:
        for closable in (self.db, self.read, self.crops, self.accounts):
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
    db = sqlite3.connect(store_path, timeout=15.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    ensure_schema(db)
    read = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, check_same_thread=False)
    read.execute("PRAGMA query_only=1")
    crops = None
    if crops_path is not None and crops_path.is_file():
        crops = CropStore(crops_path, readonly=True)
    accounts = Accounts(
        accounts_path,
        session_s=settings.session_hours * 3600,
        attempts=settings.login_attempts,
        window_s=settings.login_window_s,
    )
    taxonomy = Taxonomy(settings.taxa, db)
    return Station(settings, db, read, crops, accounts, taxonomy, evidence_root)


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
