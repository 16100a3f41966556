"""Backend selection with the probes' results injected, and the real probes on this machine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from seawatch.config import InferenceSettings
from seawatch.contracts.errors import BackendError, ConfigError
from seawatch.inference.factory import open_backend
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.inference.selection import BACKENDS, choose_backend, format_reasons

REPO = Path(__file__).resolve().parents[2]
PLANKTON = REPO / "models" / "plankton"


def _probes(**available: bool):
    """Probes answering None (available) or a canned reason, by backend name."""
    return {
        name: (lambda _d, n=name: None if available.get(n.replace("-", "_")) else f"no {n}")
        for name in BACKENDS
    }


def test_auto_takes_the_first_available_in_order_and_says_why_not_the_others():
    name, reasons = choose_backend("auto", PLANKTON, probes=_probes(onnxruntime=True))
    assert name == "onnxruntime"
    assert reasons == {
        "tensorrt": "no tensorrt",
        "onnxruntime-gpu": "no onnxruntime-gpu",
        "torch-cuda": "no torch-cuda",
    }
    everything = _probes(tensorrt=True, onnxruntime_gpu=True, torch_cuda=True, onnxruntime=True)
    name, reasons = choose_backend("auto", PLANKTON, probes=everything)
    assert name == "tensorrt"
    assert set(reasons.values()) == {"tensorrt preferred"}
    name, reasons = choose_backend(
        "auto", PLANKTON, probes=_probes(torch_cuda=True, onnxruntime=True)
    )
    assert name == "torch-cuda"
    assert reasons["onnxruntime"] == "torch-cuda preferred"
    assert reasons["tensorrt"] == "no tensorrt"


def test_a_backend_that_failed_to_open_is_skipped_with_its_error():
    probes = _probes(tensorrt=True, onnxruntime=True)
    name, reasons = choose_backend(
        "auto", PLANKTON, probes=probes, failed={"tensorrt": "failed to open: boom"}
    )
    assert name == "onnxruntime"
    assert reasons["tensorrt"] == "failed to open: boom"


def test_a_named_backend_must_be_available():
    probes = _probes(onnxruntime=True)
    assert choose_backend("onnxruntime", PLANKTON, probes=probes) == ("onnxruntime", {})
    with pytest.raises(BackendError, match="'tensorrt' is not available here: no tensorrt"):
        choose_backend("tensorrt", PLANKTON, probes=probes)
    with pytest.raises(BackendError, match="must be auto or one of"):
        choose_backend("cuda-magic", PLANKTON, probes=probes)


def test_nothing_available_and_a_crashing_probe_are_reasons_not_crashes():
    def crash(_model_dir):
        raise RuntimeError("driver exploded")

    probes = {**_probes(), "tensorrt": crash}
    with pytest.raises(BackendError, match="probe failed: RuntimeError: driver exploded"):
        choose_backend("auto", PLANKTON, probes=probes)


def test_the_real_probes_here_pick_onnxruntime_cpu():
    name, reasons = choose_backend("auto", PLANKTON)
    if name != "onnxruntime":
        pytest.skip(f"this machine has a GPU backend ({name}); the CPU-only case is not here")
    assert set(reasons) == {"tensorrt", "onnxruntime-gpu", "torch-cuda"}
    # torch runs the committed graph: the GPU is the only thing missing here
    assert "sees no CUDA device" in reasons["torch-cuda"]
    assert "execution provider" in reasons["onnxruntime-gpu"]


def test_the_real_onnxruntime_gpu_probe_follows_the_providers_onnxruntime_lists(monkeypatch):
    """What onnxruntime-gpu on a GPU machine lists makes auto choose it (TensorRT absent)."""
    import onnxruntime as ort

    from seawatch.inference.selection import probe_onnxruntime_gpu

    listed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    assert probe_onnxruntime_gpu(PLANKTON) is None
    name, reasons = choose_backend("auto", PLANKTON, probes={"tensorrt": lambda _d: "absent"})
    assert name == "onnxruntime-gpu"
    assert reasons == {
        "tensorrt": "absent",
        "torch-cuda": "onnxruntime-gpu preferred",
        "onnxruntime": "onnxruntime-gpu preferred",
    }
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert "no TensorRT/CUDA execution provider" in probe_onnxruntime_gpu(PLANKTON)


@pytest.mark.parametrize(
    ("available", "views", "graph"),
    [("onnxruntime", 4, "views4"), ("onnxruntime-gpu", 8, "."), ("torch-cuda", 8, ".")],
)
def test_otolith_auto_views_follow_the_backend_class_auto_picks(available, views, graph):
    """``views: auto`` serves the card's recommendation for the class of backend auto
    chooses: 4 views on the CPU, the trained 8-view graph on any GPU backend."""
    from seawatch.contracts.card import load_card
    from seawatch.models.otolith.serving_views import recommended_views, serving_dir

    top = REPO / "models" / "otolith"
    probes = _probes(**{available.replace("-", "_"): True, "onnxruntime": True})
    chosen, _ = choose_backend("auto", top, probes=probes)
    assert chosen == available
    card = load_card(top)
    got, _ = recommended_views(card, chosen)
    assert got == views
    assert serving_dir(top, card, got) == (top if graph == "." else top / graph)


def test_open_backend_auto_logs_the_choice_and_falls_back_when_a_gpu_backend_fails(caplog):
    probes = {**_probes(onnxruntime=True), "tensorrt": lambda _d: None}
    caplog.set_level(logging.INFO, logger="seawatch.inference.factory")
    with open_backend("auto", PLANKTON / "model.onnx", threads=1, probes=probes) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
    line = next(r.getMessage() for r in caplog.records if "backend_selected" in r.getMessage())
    assert line.startswith("backend_selected name=onnxruntime requested=auto")
    # tensorrt probed as available here, then failed to open (no tensorrt/GPU/engine here)
    assert "skipped=tensorrt:" in line
    assert "failed to open: tensorrt is not importable" in line
    assert "onnxruntime-gpu:'no onnxruntime-gpu'" in line


def test_open_backend_named_unknown_or_unavailable():
    with pytest.raises(ConfigError, match=r"not one of auto, tensorrt, .*onnxruntime"):
        open_backend("tensorrt-magic", PLANKTON / "model.onnx", threads=1)
    with pytest.raises(BackendError, match="not available here: no tensorrt"):
        open_backend("tensorrt", PLANKTON / "model.onnx", threads=1, probes=_probes())


def test_settings_default_to_auto_and_list_every_backend():
    assert InferenceSettings().backend == "auto"
    for name in ("auto", *BACKENDS):
        assert InferenceSettings(backend=name).backend == name


def test_format_reasons_is_one_key_value_field():
    assert format_reasons({"tensorrt": "not importable", "torch-cuda": "no 'x'"}) == (
        "tensorrt:'not importable',torch-cuda:\"no 'x'\""
    )
