"""The review station's pages: login, objects (grid, filters, shortcuts), one object with
its audit trail, the otolith queue, fish ids, the audit log and the taxonomy."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from seawatch.contracts.crops import image_type
from seawatch.review.accounts import LoginRefused, Role, Session
from seawatch.review.auth import COOKIE, LoggedIn, Station, Viewer
from seawatch.review.decisions import object_subject
from seawatch.review.queries import (
    ORDER_NAMES,
    STATUSES,
    ObjectFilter,
    audit_trail,
    choices,
    get_objects,
    individuals,
    objects_page,
    otolith_queue,
)
from seawatch.review_settings import ANOMALY_TYPES

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "seawatch_login"
SHORTCUTS = (
    ("← → ↑ ↓", "move"),
    ("space", "select / unselect"),
    ("shift+click", "select a range"),
    ("a", "select all on the page"),
    ("esc", "clear the selection"),
    ("v", "validate the selection"),
    ("shift+V", "validate the whole page"),
    ("d", "mark the selection dubious"),
    ("t", "reassign the selection to a taxon"),
    ("n / p", "next / previous page"),
    ("o", "open the focused object"),
)


def _station(request: Request) -> Station:
    return request.app.state.station


def _render(request: Request, name: str, session: Session | None, **context) -> HTMLResponse:
    context |= {"session": session, "request": request}
    return request.app.state.templates.TemplateResponse(request, name, context)


@router.get("/login")
def login_page(request: Request, error: str | None = None) -> HTMLResponse:
    token = secrets.token_hex(16)
    response = _render(request, "login.html", None, error=error, login_token=token)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", max_age=900)
    return response


@router.post("/login")
def login(
    request: Request,
    user: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    login_token: Annotated[str, Form(max_length=64)] = "",
):
    station = _station(request)
    if not login_token or request.cookies.get(LOGIN_COOKIE) != login_token:
        return _render_login_error(request, "the login form expired; try again", 403)
    address = request.client.host if request.client else "-"
    try:
        session = station.accounts.login(user, password, address)
    except LoginRefused as exc:
        return _render_login_error(request, str(exc), 429 if exc.limited else 401)
    response = RedirectResponse("/objects", status_code=303)
    response.set_cookie(
        COOKIE,
        session.token,  # always a new token: a cookie planted before the login is useless
        httponly=True,
        samesite="strict",
        secure=station.settings.secure_cookies,
        max_age=int(station.settings.session_hours * 3600),
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


def _render_login_error(request: Request, error: str, status: int) -> HTMLResponse:
    response = login_page(request, error)
    response.status_code = status
    return response


@router.post("/logout")
def logout(
    request: Request,
    session: LoggedIn,
    csrf: Annotated[str, Form(max_length=64)],
):
    if csrf != session.csrf:
        raise HTTPException(403, "missing or wrong CSRF token; reload the page")
    _station(request).accounts.logout(session.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/objects", status_code=303)


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, f"not a date and time: {text!r} (use 2026-12-06T10:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _number(text: str | None, name: str) -> float | None:
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise HTTPException(422, f"{name} is not a number: {text!r}") from None


def _inline_thumbs(st: Station, digests: list[str]) -> dict[str, str]:
    """The page's thumbnails as ``data:`` URIs, read in one query: a 200-object page is one
    response of ~430 KB instead of 201 requests (whose per-request cost, with the daemon
    busy on the same two cores, kept the p95 page load over 150 ms; issue 25)."""
    if st.crops is None or not digests:
        return {}
    return {
        digest: f"data:{image_type(data)};base64,{base64.b64encode(data).decode()}"
        for digest, data in st.crops.thumbs(digests).items()
    }


@router.get("/objects")
def objects(
    request: Request,
    session: Viewer,
    cruise: Annotated[str | None, Query(max_length=256)] = None,
    station: Annotated[str | None, Query(max_length=256)] = None,
    instrument: Annotated[str | None, Query(max_length=256)] = None,
    taxon: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    since: str | None = None,
    until: str | None = None,
    min_confidence: str | None = None,
    max_confidence: str | None = None,
    min_esd_um: str | None = None,
    max_esd_um: str | None = None,
    order: str = "wrong",
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    """The grid: one page of objects, the filters and the shortcuts."""
    st = _station(request)
    if status and status not in STATUSES:
        raise HTTPException(422, f"status is one of {', '.join(STATUSES)}")
    if order not in ORDER_NAMES:
        raise HTTPException(422, f"order is one of {', '.join(ORDER_NAMES)}")
    where = ObjectFilter(
        cruise=cruise or None,
        station=station or None,
        instrument=instrument or None,
        taxon=taxon or None,
        status=status or None,
        since=_when(since),
        until=_when(until),
        min_confidence=_number(min_confidence, "min_confidence"),
        max_confidence=_number(max_confidence, "max_confidence"),
        min_esd_um=_number(min_esd_um, "min_esd_um"),
        max_esd_um=_number(max_esd_um, "max_esd_um"),
    )
    size = st.settings.page_size
    rows = objects_page(st.read, where, order, page, size)
    template = "_grid.html" if request.headers.get("hx-request") else "objects.html"
    return _render(
        request,
        template,
        session,
        rows=rows,
        thumbs=_inline_thumbs(st, [r.crop for r in rows if r.crop]),
        where=where,
        query=where.query_string() | {"order": order},
        order=order,
        orders=ORDER_NAMES,
        statuses=STATUSES,
        page=page,
        size=size,
        cruises=choices(st.read, "cruise"),
        stations=choices(st.read, "station"),
        instruments=choices(st.read, "instrument"),
        taxa=st.taxonomy.groups(),
    )


@router.get("/object")
def object_page(
    request: Request,
    session: Viewer,
    uid: Annotated[str, Query(max_length=300)],
    idx: Annotated[int, Query(ge=0)],
) -> HTMLResponse:
    """One object: its crop, what the model said, and every decision about it."""
    st = _station(request)
    found = get_objects(st.read, [(uid, idx)])
    if not found:
        raise HTTPException(404, "no such object")
    trail = audit_trail(st.read, object_subject(uid, idx))
    return _render(request, "object.html", session, row=found[0], trail=trail)


@router.get("/otoliths")
def otoliths(
    request: Request,
    session: Viewer,
    status: str = "predicted",
) -> HTMLResponse:
    """Flagged specimens with thumbnail and heat map: confirm (with a type) or reject."""
    if status not in ("predicted", "confirmed", "rejected"):
        raise HTTPException(422, "status is predicted, confirmed or rejected")
    rows = otolith_queue(_station(request).read, status)
    return _render(request, "otoliths.html", session, rows=rows, status=status, types=ANOMALY_TYPES)


@router.get("/fish")
def fish(request: Request, session: Viewer, all: bool = False) -> HTMLResponse:
    """Fish ids (the provisional ones unless ``all``) with their views."""
    st = _station(request)
    fishes = individuals(st.read, provisional_only=not all)
    names = [f.name for f in individuals(st.read, provisional_only=False, views=0)]
    return _render(request, "fish.html", session, fishes=fishes, names=names, all=all)


@router.get("/audit")
def audit(
    request: Request,
    session: Viewer,
    subject: Annotated[str | None, Query(max_length=400)] = None,
) -> HTMLResponse:
    """The newest decisions (of one subject when given)."""
    trail = audit_trail(_station(request).read, subject)
    return _render(request, "audit.html", session, trail=trail, subject=subject)


@router.get("/taxonomy")
def taxonomy(request: Request, session: Viewer) -> HTMLResponse:
    """The taxa tree; admins add taxa here."""
    tree = _station(request).taxonomy.groups()
    return _render(request, "taxonomy.html", session, tree=tree, admin=session.role >= Role.ADMIN)


__all__ = ["SHORTCUTS", "router"]
