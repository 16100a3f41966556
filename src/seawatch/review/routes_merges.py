"""The "merges to confirm" page and its API: the automatic fish merges no one has reviewed,
with both ids' stored views; Confirm keeps a merge, Undo takes it back
(:mod:`seawatch.review.merge_reviews`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from seawatch.review.auth import Reviewer, Station, Viewer
from seawatch.review.decisions import DecisionError
from seawatch.review.merge_reviews import decide_merge, pending_merges, stored_views
from seawatch.review.routes_api import OutcomeOut, _answer, _refused, _responses

router = APIRouter()
VIEWS_PER_SIDE = 6


class MergeDecision(BaseModel):
    """Confirm (the merge stands) or undo (two fish) the automatic merge of ``individual``
    made at ``merged_at_us`` (microseconds), as seen at review ``version``."""

    individual: str = Field(min_length=1, max_length=64)
    merged_at_us: int = Field(ge=0)
    version: int = Field(ge=0)
    action: Literal["confirm", "undo"]


def _station(request: Request) -> Station:
    return request.app.state.station


@router.post("/api/fish/merges/decide", response_model=OutcomeOut, responses=_responses)
def merge_decide(
    body: MergeDecision,
    request: Request,
    response: Response,
    session: Reviewer,
) -> OutcomeOut | JSONResponse:
    """Confirm or undo an automatic fish merge; one reviewed (or merged again) by someone
    else since it was seen is refused (409)."""
    try:
        outcome = decide_merge(
            _station(request).db, session.user, body.individual, body.merged_at_us,
            body.version, body.action,
        )  # fmt: skip
    except DecisionError as exc:
        return _refused(exc)
    return _answer(outcome, response)


@router.get("/merges", include_in_schema=False)
def merges_page(request: Request, session: Viewer) -> HTMLResponse:
    """The automatic merges to confirm, newest first, with a few views of each side (the
    list alone for an htmx request)."""
    st = _station(request)
    pending = pending_merges(st.read)
    names = {n for m in pending for n in (m.individual, m.survivor)}
    views = {name: stored_views(st.read, name, VIEWS_PER_SIDE) for name in names}
    template = "_merges.html" if request.headers.get("hx-request") else "merges.html"
    context = {"session": session, "request": request, "pending": pending, "views": views}
    return request.app.state.templates.TemplateResponse(request, template, context)


__all__ = ["MergeDecision", "router"]
