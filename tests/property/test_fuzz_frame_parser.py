"""CI runs the frame-parser fuzz target (fuzz/fuzz_frame_parser.py) for a bounded time.

``SEAWATCH_FUZZ_SECONDS`` sets the time (default 30); ``make fuzz`` runs it for ten minutes.
Without atheris the test is skipped, except on CI, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seawatch.config import env_is_ci

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "fuzz" / "fuzz_frame_parser.py"
CORPUS = REPO / "fuzz" / "corpus" / "frame_parser"
MIN_RUNS = 1000  # ~10,000 runs a second on one core: fewer means the target barely ran


def _executed_units(log: str) -> int:
    """The run count libFuzzer reports: the final stats line, else the ``Done N runs`` line."""
    found = re.search(r"stat::number_of_executed_units:\s*(\d+)", log) or re.search(
        r"Done (\d+) runs", log
    )
    return int(found.group(1)) if found else 0


def test_executed_units_are_read_from_the_final_stats_or_the_done_line():
    assert _executed_units("#1 INITED\nstat::number_of_executed_units: 344681\n") == 344681
    assert _executed_units("Done 5120 runs in 31 second(s)\n") == 5120
    assert _executed_units("==1== ERROR: libFuzzer: deadly signal\n") == 0


def test_the_frame_parser_survives_a_bounded_fuzzing_run(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        hint = "atheris is not installed; pip install -e '.[dev]'"
        if env_is_ci():
            pytest.fail(f"{hint} (CI must run the fuzz target)")
        pytest.skip(hint)
    seconds = int(os.environ.get("SEAWATCH_FUZZ_SECONDS", "30"))
    # A fixed seed: CI replays the same mutations (a slower machine a prefix of them), so a
    # red CI is a finding anyone can replay. Exploration with fresh seeds is `make fuzz`.
    # (Open, 2026-12-06: some runs reach 2.4-2.7 GB of RSS within their first seconds and
    # others, same seed, stay at ~110 MB; the input libFuzzer writes is the one it was on when
    # RSS was sampled and does not reproduce alone. A TIFF with huge tiles was one such grower
    # (refused since); the OOM recurred after it, so another is still unfound. The bound is
    # 4 GB meanwhile: above the peaks seen, far below the 10-30 GB bombs the limits stop.)
    seed = int(os.environ.get("SEAWATCH_FUZZ_SEED", "1"))
    corpus = tmp_path / "corpus"  # libFuzzer adds inputs to it: keep the committed seeds
    shutil.copytree(CORPUS, corpus)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        sys.executable,
        str(TARGET),
        f"-max_total_time={seconds}",
        f"-seed={seed}",
        "-rss_limit_mb=4096",
        "-timeout=20",  # one input taking 20 s is a hang: a finding
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=seconds + 120,
        cwd=tmp_path,
    )
    log = done.stdout + done.stderr
    findings = sorted(path.name for path in artifacts.iterdir())
    report = "\n".join(
        line for line in log.splitlines() if "Instrumenting" not in line and "Corrupt" not in line
    )[-6000:]
    assert done.returncode == 0 and not findings, (
        f"the fuzz target failed (exit {done.returncode}, findings {findings}); reproduce with "
        f"python {TARGET.relative_to(REPO)} <finding>\n{report}"
    )
    runs = _executed_units(log)
    assert runs > MIN_RUNS, f"libFuzzer ran only {runs} inputs in {seconds} s\n{report}"
