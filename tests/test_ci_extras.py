"""A missing package that CI installs fails the run on CI and is skipped elsewhere.

The real torch tests run in a child pytest with torch hidden (a ``torch`` package first on
the path that raises ModuleNotFoundError, as an environment without the train extra does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci_extras import missing_ci_package

REPO = Path(__file__).resolve().parents[1]
# A module-level importorskip("torch") and, in test_otolith_head, in-test ones.
TORCH_TESTS = ("tests/models/test_fish_losses.py", "tests/inference/test_otolith_head.py")


def _pytest_without_torch(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    hidden = tmp_path / "hidden" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'torch\' (hidden)", name="torch")\n'
    )
    path = os.pathsep.join([str(tmp_path / "hidden"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "CI": ci}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"]
    command.append("--continue-on-collection-errors")
    return subprocess.run(
        [*command, *TORCH_TESTS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_without_torch_the_torch_tests_fail_on_ci(tmp_path: Path) -> None:
    done = _pytest_without_torch(tmp_path, ci="true")
    assert done.returncode != 0, done.stdout[-3000:]
    assert "on CI (CI=true) the train extra is installed, so a missing torch" in done.stdout
    assert "test_fish_losses.py" in done.stdout  # the module-level importorskip
    assert "test_otolith_head.py::" in done.stdout  # the ones inside tests


def test_without_torch_the_torch_tests_skip_off_ci(tmp_path: Path) -> None:
    done = _pytest_without_torch(tmp_path, ci="")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "could not import 'torch'" in done.stdout and " skipped" in done.stdout
    assert "broken install" not in done.stdout


@pytest.mark.parametrize(
    ("message", "package"),
    [
        ("Skipped: could not import 'torch': No module named 'torch'", "torch"),
        ("could not import 'sklearn.linear_model': No module named 'sklearn'", "sklearn"),
        ("could not import 'playwright.sync_api': no", "playwright"),
        # CI has no GPU: TensorRT is never installed there, so it keeps skipping
        ("could not import 'tensorrt': No module named 'tensorrt'", None),
        ("victoria-metrics is not installed; apt-get install victoria-metrics", None),
    ],
)
def test_which_skips_ci_refuses(message: str, package: str | None) -> None:
    assert missing_ci_package(message) == package
