"""scripts/gpu_check.sh, the one command for a GPU machine, run here without a GPU: every
backend recorded as not available (not a failure), and its own code path exercised with
torch on the CPU standing in for a GPU backend (``--cpu-stand-in``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
BACKENDS = {"onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "torch-cuda"}


def _run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(SCRIPT), "--json", str(out), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, json.loads(out.read_text())


def test_without_a_gpu_every_backend_is_recorded_not_available(tmp_path: Path) -> None:
    code, data = _run(tmp_path, "--no-pipeline")
    backends = data["backends"]
    assert set(backends) == BACKENDS
    if any(v == "available" for v in backends.values()):
        pytest.skip(f"this machine has a GPU backend: {backends}")
    assert code == 0 and data["failures"] == []
    assert all(v.startswith("not available: ") for v in backends.values())
    assert "onnxruntime-gpu" in backends["onnxruntime-cuda"]
    assert set(data["models"]) == {
        "plankton",
        "fish",
        "otolith",
        "otolith/views4",
        "otolith/views1",
    }
    assert set(data["models"].values()) == {"skipped: no GPU backend available here"}
    assert data["environment"]["onnxruntime_providers"]
    assert data["seconds"] < 60


def test_its_checks_run_end_to_end_with_a_cpu_stand_in(tmp_path: Path) -> None:
    code, data = _run(tmp_path, "--cpu-stand-in", "--graphs", "otolith/views1", "--no-pipeline")
    assert code == 0, data["failures"]
    block = data["models"]["otolith/views1"]
    stand_in = block["torch-cpu-stand-in"]
    assert stand_in["status"] == "passed" and stand_in["precision"] == "fp32"
    parity = stand_in["parity"]
    assert parity["passed"] and parity["samples"] == 64
    assert [(o["name"], o["kind"]) for o in parity["outputs"]] == [
        ("score", "score"),
        ("heatmap", "map"),
    ]
    assert stand_in["inputs_per_s"] > 0 and block["onnxruntime-cpu"]["inputs_per_s"] > 0
    assert "no GPU numbers" in data["stand_in"]
