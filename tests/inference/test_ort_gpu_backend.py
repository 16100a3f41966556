"""ONNX Runtime on the GPU, up to the boundary this machine has (onnxruntime CPU-only, no
GPU): the provider list it asks for, the refusal when onnxruntime lists no GPU provider, the
refusal when a session quietly falls back to the CPU, and, with a session that reports the
GPU providers it was given (the one stand-in here: what a GPU would answer), a run checked
against ONNX Runtime CPU before it serves. What needs a GPU (the CUDA and TensorRT execution
providers actually loading and computing) is checked by scripts/gpu_check.sh.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from seawatch.contracts.errors import BackendError
from seawatch.inference import ort_gpu_backend
from seawatch.inference.factory import open_backend
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.inference.ort_gpu_backend import OnnxRuntimeGpuBackend, provider_list
from seawatch.inference.parity import TOLERANCES, check_parity, sample_inputs
from seawatch.inference.selection import BACKENDS
from seawatch.registry import plugin

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
BOTH = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]


@pytest.fixture
def artifact(tmp_path) -> Path:
    """A copy of the committed otolith 1-view graph (its engines folder is written)."""
    directory = tmp_path / "otolith"
    directory.mkdir()
    for name in ("card.json", "model.onnx"):
        shutil.copy(MODELS / "otolith" / "views1" / name, directory / name)
    return directory


def _lists(monkeypatch, providers: list[str]) -> None:
    listed = [*providers, "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)


class _ReportsGpu:
    """A real CPU session that answers ``get_providers`` with the providers it was asked for,
    as a session whose CUDA/TensorRT libraries loaded does (``graph``: another graph than
    the one asked for, a GPU computing something else)."""

    def __init__(self, graph: Path | None = None) -> None:
        self.graph, self.asked = graph, []

    def __call__(self, path, options, providers):
        self.asked = list(providers)
        session = ort.InferenceSession(str(self.graph or path), providers=["CPUExecutionProvider"])
        names = [p if isinstance(p, str) else p[0] for p in providers]
        session.get_providers = lambda: names
        return session


def test_the_provider_list_has_the_trt_cache_profile_and_precision(artifact):
    providers = provider_list(artifact / "model.onnx", BOTH, max_batch=16, fp16=True)
    (trt, options), (cuda, cuda_options), cpu = providers
    assert (trt, cuda, cpu) == (*BOTH, "CPUExecutionProvider")
    assert cuda_options == {"use_tf32": "0"}  # the CUDA EP runs FP32 graphs in FP32
    assert options["trt_engine_cache_path"] == str(artifact / "engines" / "ort-trt")
    assert options["trt_timing_cache_path"] == options["trt_engine_cache_path"]
    assert options["trt_fp16_enable"] is True
    # one profile over the batch axis: no engine rebuilt when a new batch size arrives
    assert options["trt_profile_min_shapes"] == "image:1x3x128x128"
    assert options["trt_profile_opt_shapes"] == "image:16x3x128x128"
    assert options["trt_profile_max_shapes"] == "image:16x3x128x128"
    assert provider_list(artifact / "model.onnx", BOTH[1:], max_batch=8, fp16=True) == [
        ("CUDAExecutionProvider", {"use_tf32": "0"}),
        "CPUExecutionProvider",
    ]


def test_without_a_gpu_provider_it_is_refused_with_the_install_hint(artifact, monkeypatch):
    _lists(monkeypatch, [])
    with pytest.raises(
        BackendError,
        match=r"no TensorrtExecutionProvider or CUDAExecutionProvider.*onnxruntime-gpu",
    ):
        OnnxRuntimeGpuBackend(artifact / "model.onnx")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_session_that_falls_back_to_the_cpu_is_refused(artifact, monkeypatch):
    """This onnxruntime has no CUDA provider; told that it has, the real session is built,
    quietly falls back to the CPU (as onnxruntime-gpu does when CUDA fails to load), and the
    backend refuses it rather than serve on the CPU under a GPU name."""
    _lists(monkeypatch, ["CUDAExecutionProvider"])
    with pytest.raises(BackendError, match=r"fell back to \['CPUExecutionProvider'\]"):
        OnnxRuntimeGpuBackend(artifact / "model.onnx")


def test_with_gpu_providers_it_runs_like_onnxruntime_cpu(artifact, monkeypatch):
    _lists(monkeypatch, BOTH)
    monkeypatch.setattr(ort_gpu_backend, "new_session", _ReportsGpu())
    with OnnxRuntimeGpuBackend(artifact / "model.onnx", max_batch=4) as backend:
        assert backend.providers == [*BOTH, "CPUExecutionProvider"]
        assert backend.fp16 and backend.name == "onnxruntime-gpu"
        assert (artifact / "engines" / "ort-trt").is_dir()
        inputs = sample_inputs(_card(artifact), 6, make=plugin("otolith").sample_inputs, seed=1)
        with OnnxRuntimeBackend(artifact / "model.onnx") as reference:
            report = check_parity(backend, reference, inputs, TOLERANCES["fp32"], top1=False)
    assert report.passed and report.max_rel_diff == 0.0


def _card(directory: Path):
    from seawatch.contracts.card import load_card

    return load_card(directory)


def test_the_factory_checks_an_ort_gpu_backend_before_it_serves(artifact, monkeypatch, caplog):
    """Chosen explicitly, it is opened, checked on the task's own inputs and logged."""
    _lists(monkeypatch, BOTH)
    monkeypatch.setattr(ort_gpu_backend, "new_session", _ReportsGpu())
    caplog.set_level(logging.INFO, logger="seawatch.inference.factory")
    with open_backend(
        "onnxruntime-gpu",
        artifact / "model.onnx",
        threads=1,
        max_batch=4,
        sample_inputs=plugin("otolith").sample_inputs,
    ) as backend:
        assert backend.name == "onnxruntime-gpu"
    line = next(r.getMessage() for r in caplog.records if "backend_parity" in r.getMessage())
    assert "name=onnxruntime-gpu precision=fp16" in line
    assert "score[score]=0 heatmap[map]=0" in line


def test_a_gpu_backend_that_disagrees_is_refused_and_auto_moves_on(artifact, monkeypatch, caplog):
    """A GPU session computing something else (here: the 4-view graph behind the 1-view
    graph's name) fails its check at open; ``auto`` logs why and serves ONNX Runtime CPU."""
    _lists(monkeypatch, BOTH)
    monkeypatch.setattr(
        ort_gpu_backend, "new_session", _ReportsGpu(MODELS / "otolith" / "views4" / "model.onnx")
    )
    probes = {name: (lambda _d: "not here") for name in BACKENDS}
    probes |= {"onnxruntime-gpu": lambda _d: None, "onnxruntime": lambda _d: None}
    caplog.set_level(logging.INFO, logger="seawatch.inference.factory")
    with open_backend(
        "auto",
        artifact / "model.onnx",
        threads=1,
        max_batch=4,
        probes=probes,
        sample_inputs=plugin("otolith").sample_inputs,
    ) as backend:
        assert backend.name == "onnxruntime"
    line = next(r.getMessage() for r in caplog.records if "backend_selected" in r.getMessage())
    assert "onnxruntime-gpu:'failed to open: backend onnxruntime-gpu refused" in line
    assert "rel_diff score[score]=" in line


def test_run_outputs_are_finite_float32(artifact, monkeypatch):
    _lists(monkeypatch, ["CUDAExecutionProvider"])
    monkeypatch.setattr(ort_gpu_backend, "new_session", _ReportsGpu())
    x = np.zeros((2, 3, 128, 128), np.float32)
    with OnnxRuntimeGpuBackend(artifact / "model.onnx", max_batch=2, fp16=True) as backend:
        assert not backend.fp16  # the CUDA provider runs the FP32 graph
        score, heatmap = backend.run_outputs(x)
    assert score.dtype == np.float32 and np.isfinite(heatmap).all()
