"""Fixtures: a review station on a small real store, and logged-in clients."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from seawatch.review.app import create_app, open_station
from tests.review.station_data import PASSWORD, build_station, station_settings


@pytest.fixture
def station_files(tmp_path):
    return build_station(tmp_path)


@pytest.fixture
def station(station_files):
    f = station_files
    opened = open_station(station_settings(), f.store, f.crops, f.accounts, f.evidence)
    yield opened
    opened.close()


@pytest.fixture
def app(station):
    return create_app(station)


def login(client: TestClient, user: str, password: str = PASSWORD):
    """Log in through the form (with its token); return the response."""
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([0-9a-f]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"user": user, "password": password, "login_token": token},
        follow_redirects=False,
    )


def csrf_of(client: TestClient) -> str:
    """The session's CSRF token, as a page gives it to its scripts."""
    page = client.get("/objects")
    return re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text).group(1)


@pytest.fixture
def as_user(app):
    """``as_user(name)`` -> (client, csrf token) logged in as that test user."""
    clients = []

    def make(name: str):
        client = TestClient(app)
        clients.append(client)
        assert login(client, name).status_code == 303
        return client, csrf_of(client)

    yield make
    for c in clients:
        c.close()
