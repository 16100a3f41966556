"""The torch fallback's loading rules; it runs on the CPU here (the CUDA path needs a GPU)."""

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


def test_an_artifact_without_torch_files_is_unavailable_with_the_reason(artifact):
    reason = torch_cuda_unavailable(artifact)
    assert "card.json files lack torch_network and torch_weights" in reason
    assert "torch cannot load ONNX" in reason


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
