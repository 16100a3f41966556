"""The torch fallback: every committed model served from its ONNX graph run by torch, an
artifact that ships its network, and the loading rules. It runs on the CPU here in FP32 (the
CUDA device, FP16 autocast and CUDA graphs need a GPU: scripts/gpu_check.sh)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.errors import BackendError
from seawatch.inference.torch_cuda_backend import TorchCudaBackend, torch_cuda_unavailable

torch = pytest.importorskip("torch", reason="the torch fallback needs torch (the train extra)")

PLANKTON = Path(__file__).resolve().parents[2] / "models" / "plankton"
NETWORK = "seawatch.models.plankton.network:PlanktonNet"


@pytest.fixture
def artifact(tmp_path) -> Path:
    for name in ("card.json", "model.onnx"):
        shutil.copy(PLANKTON / name, tmp_path / name)
    return tmp_path


def _with_torch_files(directory: Path, network: str = NETWORK) -> torch.nn.Module:
    from seawatch.models.plankton.network import PlanktonNet

    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "mean": 0.5, "std": 0.25, "widths": [8, 16]}
    net = PlanktonNet(**kwargs).eval()
    torch.save({"kwargs": kwargs, "state_dict": net.state_dict()}, directory / "weights.pt")
    card = json.loads((directory / "card.json").read_text())
    card["files"] = {"torch_network": network, "torch_weights": "weights.pt"}
    (directory / "card.json").write_text(json.dumps(card))
    return net


MODELS = PLANKTON.parent
COMMITTED = ["plankton", "fish", "otolith", "otolith/views4", "otolith/views1"]


@pytest.mark.parametrize("graph", COMMITTED)
def test_every_committed_model_is_served_from_its_onnx_graph(graph):
    """Issue 23: the torch fallback could serve no committed model (none ships torch
    weights). It now runs each one's ONNX graph, and matches ONNX Runtime CPU on the task's
    own inputs at the fp32 tolerance."""
    from seawatch.contracts.card import load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.inference.parity import TOLERANCES, check_parity, sample_inputs
    from seawatch.registry import plugin

    directory = MODELS / graph
    card = load_card(directory)
    reason = torch_cuda_unavailable(directory)
    assert reason is None or "sees no CUDA device" in reason  # only the GPU is missing
    inputs = sample_inputs(card, 3, seed=2, make=plugin(card.task).sample_inputs)
    with (
        TorchCudaBackend(directory, max_batch=2, device="cpu", fp16=False) as backend,
        OnnxRuntimeBackend(directory / "model.onnx") as reference,
    ):
        assert backend.source == "ONNX graph model.onnx run by torch"
        report = check_parity(
            backend,
            reference,
            inputs,
            TOLERANCES["fp32"],
            top1=bool(card.class_names),
            names=card.outputs or [card.output],
        )
    assert report.passed, report.summary()
    assert report.max_rel_diff < 1e-4


def test_a_graph_with_an_operator_the_runner_lacks_is_unavailable_with_its_name(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from seawatch.contracts.card import sha256_file

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, 64, 64])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 1, 64, 64])
    graph = helper.make_graph([helper.make_node("Erf", ["image"], ["probs"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), tmp_path / "model.onnx")
    card = json.loads((PLANKTON / "card.json").read_text())
    card.pop("release", None)
    card["onnx_sha256"] = sha256_file(tmp_path / "model.onnx")
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert "operators the torch runner lacks: Erf" in torch_cuda_unavailable(tmp_path)
    with pytest.raises(BackendError, match="operators Erf are not implemented"):
        TorchCudaBackend(tmp_path, max_batch=2, device="cpu", fp16=False)


def test_with_torch_files_the_only_missing_piece_here_is_cuda(artifact):
    _with_torch_files(artifact)
    reason = torch_cuda_unavailable(artifact)
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert "sees no CUDA device" in reason
    (artifact / "weights.pt").unlink()
    assert "no torch weights" in torch_cuda_unavailable(artifact)


def test_the_network_named_by_the_card_runs_like_the_saved_one(artifact):
    net = _with_torch_files(artifact)
    x = np.random.default_rng(0).uniform(0, 255, (5, 1, 64, 64)).astype(np.float32)
    with TorchCudaBackend(
        artifact, max_batch=2, device="cpu", fp16=False, cuda_graphs=False
    ) as backend:
        (got,) = backend.run_outputs(x)
        with pytest.raises(BackendError, match="takes N x"):
            backend.run(x[:, :, :32])
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_card_naming_a_missing_class_is_a_clear_error(artifact):
    _with_torch_files(artifact, network="seawatch.models.plankton.network:Nope")
    with pytest.raises(BackendError, match="cannot import the network"):
        TorchCudaBackend(artifact, max_batch=2, device="cpu", fp16=False)
