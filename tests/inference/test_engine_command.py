"""``seawatch engine build`` where TensorRT is missing: one clear line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from seawatch.engine_command import engine_group
from seawatch.inference.selection import probe_tensorrt

PLANKTON = Path(__file__).resolve().parents[2] / "models" / "plankton"


def test_build_without_tensorrt_exits_with_a_clear_message():
    if probe_tensorrt(PLANKTON) is None:
        pytest.skip("TensorRT and a CUDA device are present; see test_tensorrt_backend.py")
    result = CliRunner().invoke(engine_group, ["build", str(PLANKTON), "--precision", "fp16"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cannot build a TensorRT engine on this machine" in result.output
    assert "seawatch[gpu]" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_build_rejects_bad_options_before_probing():
    result = CliRunner().invoke(engine_group, ["build", str(PLANKTON), "--precision", "fp8"])
    assert result.exit_code == 2
    assert "fp8" in result.output
    result = CliRunner().invoke(engine_group, ["build", "/nonexistent/model"])
    assert result.exit_code == 2


def test_int8_calibration_needs_one_batch_of_the_profile_before_probing():
    """Calibration runs in batches of the profile's opt batch (--max-batch): fewer images
    than one batch is refused at once, on any machine."""
    args = ["build", str(PLANKTON), "--precision", "int8", "--calibration", "synthetic"]
    result = CliRunner().invoke(
        engine_group, [*args, "--max-batch", "64", "--calibration-images", "32"]
    )
    assert result.exit_code == 1
    assert "--calibration-images 32 is less than one calibration batch" in result.output
    assert "opt batch (64" in result.output
