"""Local pretrained weights for the classifier's backbone (a state_dict file given by path).

Nothing is downloaded. The file may hold a bare ``state_dict`` or a checkpoint with one under
``state_dict`` / ``model``; ``module.`` prefixes (DataParallel) are stripped. Every tensor
whose name and shape match the network is loaded; the classification head is always left
fresh (its size depends on the classes). A file that matches nothing is an error, not a
silent no-op. A gray (1-channel) first convolution loaded into a colour (3-channel) network is
inflated: each input channel gets the gray weights / 3, so a gray image given as three equal
channels has the same response as before (the usual trick for ImageNet-style inflation).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seawatch.contracts.errors import ConfigError

HEAD_PREFIX = "head."
DATA_BUFFERS = frozenset({"mean", "std", "temperature"})  # set from this run's data, not loaded


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        msg = f"--pretrained {path}: no such file; give a torch state_dict (.pt/.pth)"
        raise ConfigError(msg)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = f"--pretrained {path}: not a torch weights file ({type(exc).__name__}: {exc})"
        raise ConfigError(msg) from exc
    for key in ("state_dict", "model"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        msg = f"--pretrained {path}: expected a dict of tensors (a state_dict)"
        raise ConfigError(msg)
    return {k.removeprefix("module."): v for k, v in blob.items()}


def load_backbone(model: nn.Module, path: Path) -> dict[str, object]:
    """Copy matching backbone tensors from ``path`` into ``model``; return what was loaded."""
    source = _state_dict(path)
    target = model.state_dict()
    loaded, skipped, inflated = {}, [], []
    for name, tensor in source.items():
        if name.startswith(HEAD_PREFIX) or name in DATA_BUFFERS:
            skipped.append(f"{name} (head or normalisation)")
        elif name not in target:
            skipped.append(f"{name} (not in network)")
        elif _inflatable(tensor, target[name]):
            loaded[name] = tensor.repeat(1, target[name].shape[1], 1, 1) / target[name].shape[1]
            inflated.append(name)
        elif target[name].shape != tensor.shape:
            skipped.append(f"{name} (shape {tuple(tensor.shape)} != {tuple(target[name].shape)})")
        else:
            loaded[name] = tensor
    if not any(not k.endswith("num_batches_tracked") for k in loaded):
        msg = (
            f"--pretrained {path}: no tensor matches the network by name and shape "
            f"(first skipped: {skipped[:3]}); it must be a PlanktonNet state_dict of the "
            "same widths"
        )
        raise ConfigError(msg)
    model.load_state_dict(loaded, strict=False)
    return {
        "file": str(path),
        "loaded_tensors": len(loaded),
        "skipped_tensors": len(skipped),
        "skipped_examples": skipped[:5],
        "inflated_to_colour": inflated,
    }


def _inflatable(source: torch.Tensor, target: torch.Tensor) -> bool:
    """A 1-input-channel convolution kernel that a 3-channel one of the same shape else
    takes (O x 1 x K x K into O x 3 x K x K)."""
    return (
        source.ndim == 4
        and target.ndim == 4
        and source.shape[1] == 1
        and target.shape[1] == 3
        and source.shape[0] == target.shape[0]
        and source.shape[2:] == target.shape[2:]
    )


__all__ = ["load_backbone"]
