"""The review station's web app (FastAPI + Jinja2 + htmx, every asset in the package).

FastAPI because the write endpoints get an OpenAPI schema for free (schemathesis tests
them) and typed request bodies; Jinja2 autoescapes every value a frame header or a taxon
name brings; htmx swaps the grid without a single-page framework. Nothing is fetched
from the internet: ships are offline.

Security: a server-side session per login (HttpOnly, SameSite=Strict cookie, Secure when
``review.secure_cookies``), a CSRF token per session required on every write (header
``X-CSRF-Token``), roles checked per endpoint, crops served only by digest.
"""

from __future__ import annotations

import sqlite3
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seawatch.review import routes_api, routes_merges, routes_pages
from seawatch.review.auth import LoginRequired, Station, open_station

_PACKAGE = resources.files("seawatch.review")
_SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds the security headers a response does not set itself. Plain ASGI: Starlette's
    ``@app.middleware("http")`` costs more than serving a crop, and a grid page asks 201."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                have = {name.lower() for name, _ in headers}
                headers += [h for h in _SECURITY_HEADERS if h[0] not in have]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(station: Station) -> FastAPI:
    """The app over an opened station."""
    app = FastAPI(
        title="seawatch review station",
        version="1",
        docs_url=None,  # the docs pages load assets from a CDN; ships are offline
        redoc_url=None,
    )
    app.state.station = station
    templates = Jinja2Templates(directory=str(_PACKAGE / "templates"))
    templates.env.globals["shortcuts"] = routes_pages.SHORTCUTS
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(_PACKAGE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired):
        return RedirectResponse("/login", status_code=303)

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(sqlite3.OperationalError)
    async def busy(request: Request, exc: sqlite3.OperationalError):
        return JSONResponse({"detail": f"the store is busy ({exc}); try again"}, status_code=503)

    app.include_router(routes_pages.router)
    app.include_router(routes_api.router)
    app.include_router(routes_merges.router)
    return app


__all__ = ["create_app", "open_station"]
