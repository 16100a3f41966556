"""TensorRT on a real GPU: build, parity, cache hit, batches. Skipped without TensorRT or CUDA.

These tests have not been run on real hardware yet (the development machine has no GPU);
on a GPU box with ``pip install 'seawatch[gpu]'`` they build real engines (about a minute).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

trt = pytest.importorskip(
    "tensorrt", reason="tensorrt is not installed (pip install 'seawatch[gpu]' on a GPU machine)"
)

from seawatch.contracts.card import load_card  # noqa: E402
from seawatch.contracts.errors import BackendError  # noqa: E402
from seawatch.inference._cuda import gpu_info  # noqa: E402
from seawatch.inference.engine_cache import EngineCache  # noqa: E402
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from seawatch.inference.parity import sample_inputs  # noqa: E402
from seawatch.inference.tensorrt_backend import TensorRTBackend, ensure_engine  # noqa: E402
from seawatch.registry import plugin  # noqa: E402

try:
    GPU = gpu_info()
except BackendError as exc:
    pytest.skip(f"no CUDA device: {exc}", allow_module_level=True)

PLANKTON = Path(__file__).resolve().parents[2] / "models" / "plankton"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("plankton")
    for name in ("card.json", "model.onnx"):
        shutil.copy(PLANKTON / name, directory / name)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_build_check_and_cache_an_engine(artifact, precision):
    first = ensure_engine(artifact, max_batch=16, precision=precision, parity_samples=48)
    assert first.built and first.parity["passed"] is True
    assert first.plan_path.parent == artifact / "engines"
    assert first.key.gpu_name == GPU.name
    assert first.key.tensorrt_version == trt.__version__
    second = ensure_engine(artifact, max_batch=16, precision=precision)
    assert not second.built and second.plan_path == first.plan_path
    timing = EngineCache(artifact).timing_cache_path(GPU.name, GPU.capability, trt.__version__)
    assert timing.is_file() and timing.stat().st_size > 0


@pytest.mark.slow
def test_the_engine_runs_any_batch_size_like_onnxruntime(artifact):
    result = ensure_engine(artifact, max_batch=16, precision="fp32", parity_samples=16)
    card = load_card(artifact)
    inputs = sample_inputs(card, 37, seed=5, make=plugin(card.task).sample_inputs)
    with (
        TensorRTBackend(result.plan_path, max_batch=16) as engine,
        OnnxRuntimeBackend(artifact / "model.onnx") as reference,
    ):
        for n in (1, 7, 16, 37):
            got, want = engine.run(inputs[:n]), reference.run(inputs[:n])
            assert got.shape == want.shape == (n, 10)
            assert np.max(np.abs(got - want)) < 1e-3


@pytest.mark.slow
def test_a_changed_profile_rebuilds(artifact):
    a = ensure_engine(artifact, max_batch=16, precision="fp32", parity_samples=16)
    b = ensure_engine(artifact, max_batch=8, precision="fp32", parity_samples=16)
    assert b.built and b.plan_path != a.plan_path


OTOLITH = PLANKTON.parent / "otolith" / "views1"


@pytest.mark.slow
def test_an_otolith_engine_passes_parity_at_the_scale_of_its_scores(tmp_path):
    """Issue 23: otolith scores are tens to hundreds; its FP16 engine is judged relative to
    each score and each map's peak, on otoliths from its own generator."""
    for name in ("card.json", "model.onnx"):
        shutil.copy(OTOLITH / name, tmp_path / name)
    precision = "fp16" if GPU.fast_fp16 else "fp32"
    result = ensure_engine(
        tmp_path,
        max_batch=8,
        precision=precision,
        parity_samples=24,
        sample_inputs=plugin("otolith").sample_inputs,
    )
    assert result.parity["passed"] is True
    kinds = [(o["name"], o["kind"]) for o in result.parity["outputs"]]
    assert kinds == [("score", "score"), ("heatmap", "map")]


@pytest.mark.slow
def test_int8_calibrates_in_batches_of_the_profile(artifact):
    """TensorRT 10 calibrates at the profile's opt batch: batches of exactly max_batch."""
    if int(trt.__version__.split(".")[0]) != 10 or not GPU.int8:
        pytest.skip("implicit INT8 calibration is TensorRT 10 on a GPU with INT8")
    from seawatch.inference.parity import iter_batches

    card = load_card(artifact)
    images = sample_inputs(card, 64, seed=9, make=plugin(card.task).sample_inputs)
    result = ensure_engine(
        artifact,
        max_batch=16,
        precision="int8",
        calibration=list(iter_batches(images, 16)),
        has_calibration=True,
        parity_samples=48,
        rebuild=True,
    )
    assert result.key.precision == "int8" and result.parity["passed"] is True
