"""PyTorch on CUDA: the GPU fallback when neither TensorRT nor onnxruntime-gpu is there.

torch cannot load an ONNX graph, so this backend needs the network itself: the model card's
``files`` must name the network class (``"torch_network": "seawatch.models.plankton.network:
PlanktonNet"``) and a weights file (``"torch_weights": "weights.pt"``) holding either a plain
state dict or ``{"kwargs": {...constructor arguments...}, "state_dict": {...}}``, loaded with
``weights_only=True``. The class's ``forward`` must compute what the ONNX graph computes (the
seawatch networks do: normalisation and softmax/L2 are inside ``forward``); the parity check
catches one that does not. On the GPU the network runs in FP16, channels_last, and replays
one CUDA graph per batch-size bucket (powers of two up to ``max_batch``, captured on first
use, inputs zero-padded to the bucket). An artifact without those files is reported
unavailable with that reason. torch is imported only here.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ModelCard, load_card
from seawatch.contracts.errors import BackendError
from seawatch.inference.backend import BackendBase

NETWORK_FILE_ROLE, WEIGHTS_FILE_ROLE = "torch_network", "torch_weights"


def torch_cuda_unavailable(model_dir: Path, card: ModelCard | None = None) -> str | None:
    """Why this backend cannot run the model in ``model_dir`` (None: it can). Cheap checks
    first, so an artifact without torch weights never imports torch."""
    card = card or load_card(model_dir)
    missing = [r for r in (NETWORK_FILE_ROLE, WEIGHTS_FILE_ROLE) if r not in card.files]
    if missing:
        return (
            f"card.json files lack {' and '.join(missing)} (torch cannot load ONNX; this "
            "fallback needs the network class and a weights.pt state dict)"
        )
    weights = Path(model_dir) / card.files[WEIGHTS_FILE_ROLE]
    if not weights.is_file():
        return f"no torch weights at {weights}"
    if importlib.util.find_spec("torch") is None:
        return "torch not installed (the train extra)"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    return None


def _network_class(spec: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        msg = f"card file {NETWORK_FILE_ROLE} must be 'module:Class', got {spec!r}"
        raise BackendError(msg)
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        msg = f"cannot import the network {spec!r} named by the card: {exc}"
        raise BackendError(msg) from exc


class TorchCudaBackend(BackendBase):
    """The model's torch network on a CUDA device (or, for tests, on the CPU in FP32)."""

    name = "torch-cuda"

    def __init__(
        self,
        model_dir: Path,
        *,
        max_batch: int,
        device: str = "cuda",
        fp16: bool = True,
        cuda_graphs: bool = True,
    ) -> None:
        import torch

        self._torch = torch
        model_dir = Path(model_dir)
        card = load_card(model_dir)
        if NETWORK_FILE_ROLE not in card.files or WEIGHTS_FILE_ROLE not in card.files:
            raise BackendError(torch_cuda_unavailable(model_dir, card) or "no torch weights")
        cls = _network_class(card.files[NETWORK_FILE_ROLE])
        try:
            saved = torch.load(
                model_dir / card.files[WEIGHTS_FILE_ROLE], map_location="cpu", weights_only=True
            )
        except Exception as exc:
            msg = f"cannot load torch weights {card.files[WEIGHTS_FILE_ROLE]}: {exc}"
            raise BackendError(msg) from exc
        kwargs, state = (
            (saved.get("kwargs", {}), saved["state_dict"]) if "state_dict" in saved else ({}, saved)
        )
        try:
            network = cls(**kwargs)
            network.load_state_dict(state, strict=True)
        except Exception as exc:
            msg = f"the weights do not fit {card.files[NETWORK_FILE_ROLE]}: {exc}"
            raise BackendError(msg) from exc
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        self.precision = "fp16" if fp16 else "fp32"  # the parity tolerance it is held to
        self._network = network.eval().to(self.device, dtype=self.dtype)
        self._network = self._network.to(memory_format=torch.channels_last)
        self.max_batch = max_batch
        self._use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple[Any, Any, tuple[Any, ...]]] = {}
        self._shape = (card.input.channels, card.input.height, card.input.width)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_outputs(batch)[0]

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run in chunks of at most ``max_batch``; outputs as float32 numpy arrays."""
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self._shape:
            msg = f"torch network takes N x {self._shape}, got {batch.shape}"
            raise BackendError(msg)
        try:
            parts = [
                self._run_chunk(batch[i : i + self.max_batch])
                for i in range(0, len(batch), self.max_batch)
            ]
        except BackendError:
            raise
        except Exception as exc:
            msg = f"torch ({self.device}) failed on a batch of {len(batch)}: {exc}"
            raise BackendError(msg) from exc
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))

    def _run_chunk(self, chunk: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
        x = x.to(self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self._use_graphs:
                outputs = self._replay(x)
            else:
                out = self._network(x)
                outputs = out if isinstance(out, tuple | list) else (out,)
        return [o[: len(chunk)].float().cpu().numpy() for o in outputs]

    def _replay(self, x: Any) -> tuple[Any, ...]:
        """Copy ``x`` into the static input of its bucket's CUDA graph and replay it."""
        torch = self._torch
        n = x.shape[0]
        bucket = min(self.max_batch, 1 << (n - 1).bit_length())
        if bucket not in self._graphs:
            static = torch.zeros((bucket, *self._shape), device=self.device, dtype=self.dtype)
            static = static.contiguous(memory_format=torch.channels_last)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up before capture, as torch.cuda.graphs requires
                    self._network(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._network(static)
            self._graphs[bucket] = (graph, static, out if isinstance(out, tuple) else (out,))
        graph, static, outputs = self._graphs[bucket]
        static[:n].copy_(x)
        static[n:].zero_()
        graph.replay()
        return outputs

    def close(self) -> None:
        self._graphs = {}
        self._network = None


__all__ = ["TorchCudaBackend", "torch_cuda_unavailable"]
