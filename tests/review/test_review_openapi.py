"""schemathesis against the OpenAPI schema of the review station's write endpoints, logged
in as an admin with the session's CSRF token: no input the schema allows makes a server
error, every status is one the schema documents, every body matches its schema."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from seawatch.review.app import create_app, open_station
from tests.review.conftest import csrf_of, login
from tests.review.station_data import build_station, station_settings

schemathesis = pytest.importorskip("schemathesis")


# schemathesis collects the operations at import: the station is built here, once.
_ROOT = Path(tempfile.mkdtemp(prefix="seawatch-openapi-"))
_FILES = build_station(_ROOT, plankton=40)
_STATION = open_station(
    station_settings(), _FILES.store, _FILES.crops, _FILES.accounts, _FILES.evidence
)
APP = create_app(_STATION)
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)  # also when no test here runs
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def admin():
    with TestClient(APP) as client:
        assert login(client, "ada").status_code == 303
        yield client, csrf_of(client)
    _STATION.close()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_write_endpoints_hold_to_their_schema(case, admin):
    # sent by the app's own test client: schemathesis' requests transport trips over the
    # urllib3-future that grafana-client's niquests installs over urllib3
    client, csrf = admin
    sent = case.as_transport_kwargs(base_url="http://testserver", headers={"X-CSRF-Token": csrf})
    if isinstance(sent.get("data"), bytes | str):  # raw bodies go as content
        sent["content"] = sent.pop("data")
    body = {k: sent[k] for k in ("json", "data", "content", "params") if sent.get(k) is not None}
    response = client.request(sent["method"], sent["url"], headers=sent["headers"], **body)
    case.validate_response(response)


def test_the_schema_lists_every_write_endpoint(app):
    with TestClient(app) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/objects/decide", "/api/otoliths/decide", "/api/fish/decide",
        "/api/fish/merges/decide", "/api/taxa",
    }  # fmt: skip
