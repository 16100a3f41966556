"""Parity of a candidate backend with ONNX Runtime CPU: real candidates, one refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from seawatch.contracts.card import load_card
from seawatch.contracts.errors import BackendError
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.inference.parity import (
    TOLERANCES,
    Tolerance,
    check_parity,
    folder_inputs,
    iter_batches,
    sample_inputs,
)
from seawatch.inference.precision import convert_onnx_to_fp16
from seawatch.registry import plugin

REPO = Path(__file__).resolve().parents[2]
PLANKTON, FISH = REPO / "models" / "plankton", REPO / "models" / "fish"


def _live_like(card, n: int, seed: int = 0) -> np.ndarray:
    """The task plug-in's inputs (images like live ones), as the engine build uses them."""
    return sample_inputs(card, n, seed=seed, make=plugin(card.task).sample_inputs)


@pytest.fixture(scope="module")
def plankton_inputs() -> np.ndarray:
    return _live_like(load_card(PLANKTON), 96)


def test_sample_inputs_are_like_live_ones_and_reproducible():
    card = load_card(PLANKTON)
    a, b = _live_like(card, 12, seed=3), _live_like(card, 12, seed=3)
    assert a.shape == (12, 1, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and a.std() > 10
    noise = sample_inputs(card, 12, seed=3)  # no task inputs: uniform over the value range
    assert noise.shape == a.shape and not np.array_equal(noise, a)
    assert abs(float(noise.mean()) - 127.5) < 10
    fish = _live_like(load_card(FISH), 4)
    assert fish.shape == (4, 3, 64, 160) and fish.dtype == np.float32


def test_the_fp16_graph_passes_with_its_tolerance(tmp_path, plankton_inputs):
    fp16 = convert_onnx_to_fp16(PLANKTON / "model.onnx", tmp_path / "fp16.onnx")
    with OnnxRuntimeBackend(fp16) as candidate, OnnxRuntimeBackend(PLANKTON / "model.onnx") as ref:
        report = check_parity(candidate, ref, plankton_inputs, TOLERANCES["fp16"], chunk=40)
    assert report.passed
    assert report.samples == 96
    assert report.top1_agreement is not None and report.top1_agreement >= 0.98
    assert 0 < report.max_abs_diff < TOLERANCES["fp16"].max_abs_diff
    assert report.as_record()["passed"] is True


def test_an_embedding_model_has_no_top1_but_is_checked_on_its_values(tmp_path):
    fp16 = convert_onnx_to_fp16(FISH / "model.onnx", tmp_path / "fp16.onnx")
    inputs = _live_like(load_card(FISH), 16, seed=1)
    with OnnxRuntimeBackend(fp16) as candidate, OnnxRuntimeBackend(FISH / "model.onnx") as ref:
        report = check_parity(candidate, ref, inputs, TOLERANCES["fp16"], top1=False)
    assert report.top1_agreement is None
    assert report.passed and "top1_agreement=n/a" in report.summary()


def _perturbed(source: Path, target: Path, scale: float) -> Path:
    model = onnx.load(str(source))
    rng = np.random.default_rng(7)
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.ndim == 4:  # conv kernels
            noise = rng.normal(0, scale * (values.std() + 1e-6), values.shape)
            init.CopyFrom(numpy_helper.from_array((values + noise).astype(np.float32), init.name))
    onnx.save(model, str(target))
    return target


def test_a_broken_candidate_is_refused_with_its_numbers(tmp_path, plankton_inputs):
    broken = _perturbed(PLANKTON / "model.onnx", tmp_path / "broken.onnx", scale=1.0)
    with (
        OnnxRuntimeBackend(broken) as candidate,
        OnnxRuntimeBackend(PLANKTON / "model.onnx") as ref,
        pytest.raises(BackendError) as info,
    ):
        check_parity(candidate, ref, plankton_inputs, TOLERANCES["fp16"])
    message = str(info.value)
    assert "refused" in message
    assert "top1_agreement=" in message and "(min 0.98)" in message
    assert "max_abs_diff=" in message and "(max 0.02)" in message


def test_the_fp32_tolerance_refuses_fp16_rounding(tmp_path, plankton_inputs):
    fp16 = convert_onnx_to_fp16(PLANKTON / "model.onnx", tmp_path / "fp16.onnx")
    strict = Tolerance(min_top1=1.0, max_abs_diff=1e-7)
    with (
        OnnxRuntimeBackend(fp16) as candidate,
        OnnxRuntimeBackend(PLANKTON / "model.onnx") as ref,
        pytest.raises(BackendError, match="max_abs_diff"),
    ):
        check_parity(candidate, ref, plankton_inputs[:8], strict)


def test_a_candidate_with_another_output_shape_is_refused(tmp_path):
    with (
        OnnxRuntimeBackend(FISH / "model.onnx") as fish,
        OnnxRuntimeBackend(PLANKTON / "model.onnx") as ref,
    ):

        class _Wrong:
            name = "wrong"

            def run_outputs(self, batch):  # probs of the wrong width, features as the graph's
                return (np.zeros((len(batch), 3), np.float32), np.zeros((len(batch), 160)))

        inputs = sample_inputs(load_card(PLANKTON), 4)
        with pytest.raises(BackendError, match="shape"):
            check_parity(_Wrong(), ref, inputs, TOLERANCES["fp32"])
        with pytest.raises(BackendError, match="at least one"):
            check_parity(fish, ref, inputs[:0], TOLERANCES["fp32"])


def test_folder_inputs_and_calibration_batches(tmp_path):
    card = load_card(PLANKTON)
    for i, crop in enumerate(_live_like(card, 5, seed=2)):
        cv2.imwrite(str(tmp_path / f"crop{i}.png"), crop[0].astype(np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    images = folder_inputs(card, tmp_path, model_input=plugin("plankton").model_input)
    assert images.shape == (5, 1, 64, 64)
    assert [len(b) for b in iter_batches(images, 2)] == [2, 2]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError, match="no images"):
        folder_inputs(card, empty)
    shutil.rmtree(empty)
