"""The review station's write endpoints (JSON in, JSON out; in the OpenAPI schema) and the
crop and evidence images."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from seawatch.contracts.crops import image_type, is_digest
from seawatch.review.accounts import Role
from seawatch.review.auth import (
    Admin,
    Annotator,
    Reviewer,
    Station,
    Viewer,
    current_session,
    need,
)
from seawatch.review.decisions import (
    DecisionError,
    NoSuchSubject,
    Outcome,
    decide_fish,
    decide_objects,
    decide_otolith,
)
from seawatch.review_settings import ANOMALY_TYPES, GROUP, TAXON

router = APIRouter()
UID = Annotated[str, Field(min_length=1, max_length=300)]


class ObjectRef(BaseModel):
    """An object as the page showed it: frame uid, index, version seen."""

    uid: UID
    idx: int = Field(ge=0, le=1_000_000)
    version: int = Field(ge=0)


class ObjectDecision(BaseModel):
    """Validate, reassign (to ``taxon``) or mark dubious some objects."""

    action: Literal["validate", "reassign", "dubious"]
    items: list[ObjectRef] = Field(min_length=1, max_length=1000)
    taxon: str | None = Field(None, max_length=64)


class OtolithDecision(BaseModel):
    """Confirm a flagged otolith's anomaly (with its type) or reject it as normal."""

    uid: UID
    version: int = Field(ge=0)
    action: Literal["confirm", "reject"]
    anomaly_type: Literal[ANOMALY_TYPES] | None = None  # type: ignore[valid-type]


class FishDecision(BaseModel):
    """Confirm, rename, merge or split a fish id."""

    individual: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=0)
    action: Literal["confirm", "rename", "merge", "split"]
    target: str | None = Field(None, max_length=64)
    sightings: list[UID] = Field(default_factory=list, max_length=1000)


class TaxonAddition(BaseModel):
    """A taxon an admin adds under a group."""

    group: str = Field(min_length=1, max_length=128, pattern=GROUP.pattern)
    taxon: str = Field(min_length=1, max_length=64, pattern=TAXON.pattern)


class StaleOut(BaseModel):
    subject: str
    seen_version: int
    version: int
    by: str | None


class OutcomeOut(BaseModel):
    """What was applied, what was refused because someone changed it first (``stale``),
    and why a decision could not be made at all (``detail``, with 409)."""

    applied: list[str]
    stale: list[StaleOut]
    detail: str | None = None


class Missing(BaseModel):
    """The subject does not exist."""

    detail: str


def _station(request: Request) -> Station:
    return request.app.state.station


def _out(outcome: Outcome) -> OutcomeOut:
    stale = [StaleOut(subject=s.subject, seen_version=s.seen_version, version=s.version, by=s.by)
             for s in outcome.stale]  # fmt: skip
    return OutcomeOut(applied=outcome.applied, stale=stale)


def _refused(exc: DecisionError) -> JSONResponse:
    """404 for a subject that does not exist; 409 (nothing applied) for a decision the
    current state does not allow."""
    if isinstance(exc, NoSuchSubject):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    body = OutcomeOut(applied=[], stale=[], detail=str(exc))
    return JSONResponse(body.model_dump(), status_code=409)


_responses: dict[int | str, dict] = {
    400: {"description": "a body that is not JSON", "model": Missing},
    401: {"description": "not logged in", "model": Missing},
    403: {"description": "a role too low, or no CSRF token", "model": Missing},
    404: {"description": "no such subject", "model": Missing},
    409: {
        "description": "some subjects changed since they were seen (stale), or the decision "
        "is not possible in the current state (detail)",
        "model": OutcomeOut,
    },
}


def _answer(outcome: Outcome, response: Response) -> OutcomeOut:
    if outcome.stale:
        response.status_code = 409
    return _out(outcome)


@router.post("/api/objects/decide", response_model=OutcomeOut, responses=_responses)
def objects_decide(
    body: ObjectDecision,
    request: Request,
    response: Response,
    session: Annotator,
) -> OutcomeOut | JSONResponse:
    """Decide on plankton objects; each one changed since it was seen is refused (409)."""
    station = _station(request)
    items = [(i.uid, i.idx, i.version) for i in body.items]
    try:
        outcome = decide_objects(
            station.db, session.user, items, body.action, body.taxon, station.taxonomy.names()
        )
    except DecisionError as exc:
        return _refused(exc)
    return _answer(outcome, response)


@router.post("/api/otoliths/decide", response_model=OutcomeOut, responses=_responses)
def otolith_decide(
    body: OtolithDecision,
    request: Request,
    response: Response,
    session: Annotator,
) -> OutcomeOut | JSONResponse:
    """Confirm or reject a flagged otolith."""
    try:
        outcome = decide_otolith(
            _station(request).db, session.user, body.uid, body.version, body.action,
            body.anomaly_type,
        )  # fmt: skip
    except DecisionError as exc:
        return _refused(exc)
    return _answer(outcome, response)


@router.post("/api/fish/decide", response_model=OutcomeOut, responses=_responses)
def fish_decide(
    body: FishDecision,
    request: Request,
    response: Response,
    session: Reviewer,
) -> OutcomeOut | JSONResponse:
    """Confirm, rename, merge or split a fish id."""
    try:
        outcome = decide_fish(
            _station(request).db, session.user, body.individual, body.version, body.action,
            target=body.target, sightings=body.sightings,
        )  # fmt: skip
    except DecisionError as exc:
        return _refused(exc)
    return _answer(outcome, response)


@router.post("/api/taxa", status_code=201, response_model=dict[str, str], responses=_responses)
def taxa_add(
    body: TaxonAddition, request: Request, session: Admin
) -> dict[str, str] | JSONResponse:
    """Add a taxon to the taxonomy (admins)."""
    try:
        _station(request).taxonomy.add(body.group, body.taxon, session.user)
    except DecisionError as exc:
        return _refused(exc)
    return {"added": body.taxon}


_viewer = need(Role.VIEWER)


def _image_bytes(request: Request, suffix: str, thumb: bool) -> bytes:
    """The crop (or its thumbnail) a request names, for a logged-in viewer (the checks
    ``Viewer`` makes)."""
    _viewer(request, current_session(request))
    name = request.path_params["name"]
    digest = name.removesuffix(suffix)
    crops = _station(request).crops
    data = None
    if crops is not None and name.endswith(suffix) and is_digest(digest):
        data = crops.thumb(digest) if thumb else crops.get(digest)
    if data is None:
        raise HTTPException(404, "no such crop (never kept, or past retention)")
    return data


# content-addressed: the same name never holds other bytes
_IMMUTABLE = {"Cache-Control": "private, max-age=31536000, immutable"}


async def crop(request: Request) -> Response:
    """A kept crop by ``<digest>.png`` (PNG, or the JPEG an instrument sent); anything else
    is 404 (no paths, no traversal).

    A plain route on the event loop: a grid page asks for 200 crops at once, and the two
    lookups (session, crop: ~40 µs) cost far less than the thread-pool hops of a FastAPI
    route with the ``Viewer`` dependency (one per function, ~0.1-0.2 ms each here)."""
    data = _image_bytes(request, ".png", thumb=False)
    return Response(data, media_type=image_type(data), headers=_IMMUTABLE)


async def thumb(request: Request) -> Response:
    """A crop's grid thumbnail by ``<digest>.jpg`` (JPEG; the PNG crop itself when it is
    small or was stored before thumbnails); 404 otherwise, as :func:`crop`."""
    data = _image_bytes(request, ".jpg", thumb=True)
    return Response(data, media_type=image_type(data), headers=_IMMUTABLE)


router.add_route("/crops/{name}", crop, methods=["GET"], include_in_schema=False)
router.add_route("/thumbs/{name}", thumb, methods=["GET"], include_in_schema=False)


@router.get("/evidence", include_in_schema=False)
def evidence(
    request: Request,
    _: Viewer,
    uid: Annotated[str, Query(max_length=300)],
    kind: Literal["thumbnail", "heatmap"] = "thumbnail",
) -> FileResponse:
    """A flagged otolith's thumbnail or heat map, found by its frame uid in the store (the
    path comes from the store, and must lie under the evidence root)."""
    station = _station(request)
    row = station.read.execute(f"SELECT {kind} FROM otolith WHERE frame_uid = ?", (uid,)).fetchone()
    if row is None or not row[0]:
        raise HTTPException(404, "no evidence for this specimen")
    root = station.evidence_root.resolve()
    path = (root / row[0]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(404, "no evidence for this specimen")
    return FileResponse(path, media_type="image/jpeg")


__all__ = ["router"]
