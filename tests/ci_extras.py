"""On CI a missing package that CI installs is a failure, not a skip.

``.ci/run`` installs the train and dev extras (``make test`` depends on them), so on CI
(``CI=true``) a test that ``pytest.importorskip``-s one of their packages and finds it missing
is a broken install: it would pass CI without running. :func:`fail_if_ci_should_have` turns
such a skip (at collection, for module-level ``importorskip``, or in a test) into a failure
naming the package and the extra. Elsewhere the skip stays, with pytest's own message.
Packages CI does not install (TensorRT, which needs a GPU) keep skipping everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from seawatch.config import env_is_ci

#: Top-level packages the extras that CI installs provide, and the extra.
CI_INSTALLS: dict[str, str] = {
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "sklearn": "train",
    "playwright": "dev",
    "schemathesis": "dev",
    "hypothesis": "dev",
}
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")


def missing_ci_package(skip_message: str) -> str | None:
    """The package CI installs that an ``importorskip`` skip message says is missing."""
    match = _IMPORT_SKIP.search(skip_message)
    if match is None:
        return None
    top = match.group(1).partition(".")[0]
    return top if top in CI_INSTALLS else None


def _skip_message(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def fail_if_ci_should_have(report: Any, *, ci: bool | None = None) -> None:
    """Turn ``report`` (a test's or a collector's) from skipped into failed when it skipped
    because a package CI installs is missing, and this is CI."""
    if not report.skipped or not (env_is_ci() if ci is None else ci):
        return
    message = _skip_message(report)
    package = missing_ci_package(message)
    if package is None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{message.removeprefix('Skipped: ')}: on CI (CI=true) the {CI_INSTALLS[package]} "
        f"extra is installed, so a missing {package} is a broken install, not a skip"
    )


__all__ = ["CI_INSTALLS", "fail_if_ci_should_have", "missing_ci_package"]
