"""PyTorch on CUDA: the GPU fallback when neither TensorRT nor onnxruntime-gpu is there.

It serves any artifact from its ``model.onnx``: the graph is run by torch itself
(:mod:`seawatch.inference.onnx_torch`, the operator subset the seawatch graphs use), in FP16
under ``torch.autocast`` (reductions and powers stay FP32). An artifact may instead ship the
network: the card's ``files`` naming the class (``"torch_network":
"seawatch.models.plankton.network:PlanktonNet"``) and a weights file (``"torch_weights":
"weights.pt"``, a plain state dict or ``{"kwargs": ..., "state_dict": ...}``, loaded with
``weights_only=True``); that network runs in FP16 throughout. Either way it runs
channels_last and replays one CUDA graph per batch-size bucket (powers of two up to
``max_batch``, captured on first use, inputs zero-padded to the bucket; a graph that cannot
be captured runs eagerly), and the factory checks its outputs against ONNX Runtime CPU
before it serves. torch is imported only here.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import BackendError
from seawatch.inference.backend import BackendBase

log = logging.getLogger(__name__)

NETWORK_FILE_ROLE, WEIGHTS_FILE_ROLE = "torch_network", "torch_weights"


def torch_cuda_unavailable(model_dir: Path, card: ModelCard | None = None) -> str | None:
    """Why this backend cannot run the model in ``model_dir`` (None: it can). Cheap checks
    first: torch and a CUDA device, then that torch can run the artifact (its named network
    and weights, else every operator of its ONNX graph)."""
    card = card or load_card(model_dir)
    if importlib.util.find_spec("torch") is None:
        return "torch not installed (the train extra)"
    if _ships_network(card):
        weights = Path(model_dir) / card.files[WEIGHTS_FILE_ROLE]
        if not weights.is_file():
            return f"no torch weights at {weights}"
    elif importlib.util.find_spec("onnx") is None:
        return "onnx not installed (running the ONNX graph in torch reads it with onnx)"
    else:
        from seawatch.inference.onnx_torch import unsupported_ops

        missing = unsupported_ops(Path(model_dir) / ONNX_FILE)
        if missing:
            return f"the ONNX graph has operators the torch runner lacks: {', '.join(missing)}"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    return None


def _ships_network(card: ModelCard) -> bool:
    return NETWORK_FILE_ROLE in card.files and WEIGHTS_FILE_ROLE in card.files


def _load_network(model_dir: Path, card: ModelCard) -> Any:
    """The network class the card names, with its weights (strictly: every tensor)."""
    import torch

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
    return network


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
        self.device = torch.device(device)
        self.precision = "fp16" if fp16 else "fp32"  # the parity tolerance it is held to
        if not fp16:  # cuDNN convolutions default to TF32 on Ampere and later: fp32 is fp32
            torch.backends.cudnn.allow_tf32 = False
        if _ships_network(card):
            network = _load_network(model_dir, card)
            self.source = f"network {card.files[NETWORK_FILE_ROLE]}"
            self.dtype = torch.float16 if fp16 else torch.float32  # the whole network
            self._autocast = False
        else:
            from seawatch.inference.onnx_torch import load_onnx_graph

            network = load_onnx_graph(model_dir / ONNX_FILE)
            self.source = f"ONNX graph {ONNX_FILE} run by torch"
            self.dtype = torch.float32  # FP16 under autocast: reductions stay FP32
            self._autocast = fp16 and self.device.type == "cuda"
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
                try:
                    outputs = self._replay(x)
                except RuntimeError as exc:  # a graph torch cannot capture runs eagerly
                    log.warning("cuda_graph_disabled source=%r reason=%r", self.source, exc)
                    self._use_graphs, self._graphs = False, {}
                    outputs = self._eager(x)
            else:
                outputs = self._eager(x)
        return [o[: len(chunk)].float().cpu().numpy() for o in outputs]

    def _eager(self, x: Any) -> tuple[Any, ...]:
        torch = self._torch
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self._autocast):
            out = self._network(x)
        return tuple(out) if isinstance(out, tuple | list) else (out,)

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
                    self._eager(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with (
                torch.cuda.graph(graph),
                torch.autocast("cuda", torch.float16, enabled=self._autocast, cache_enabled=False),
            ):
                out = self._network(static)
            self._graphs[bucket] = (
                graph,
                static,
                tuple(out) if isinstance(out, tuple | list) else (out,),
            )
        graph, static, outputs = self._graphs[bucket]
        static[:n].copy_(x)
        static[n:].zero_()
        graph.replay()
        return outputs

    def close(self) -> None:
        self._graphs = {}
        self._network = None


__all__ = ["TorchCudaBackend", "torch_cuda_unavailable"]
