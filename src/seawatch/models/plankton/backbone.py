"""The classifier's backbone as an artifact: ``backbone.pt`` (a state_dict of the stem and the
residual stages) and ``backbone.json`` (its card: architecture, where it came from, SHA-256).

Every trained plankton model writes its backbone beside ``model.onnx``, so a user's training
starts from the best backbone the project has with no flag (``--pretrained auto``): the
committed ``models/plankton`` backbone (synthetic-pretrained) or a self-supervised one
(``seawatch train plankton-ssl``). Nothing is downloaded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from seawatch.config import resolve_model_dir
from seawatch.contracts.card import sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.pretrained import DATA_BUFFERS, HEAD_PREFIX

BACKBONE_FILE, BACKBONE_CARD = "backbone.pt", "backbone.json"
DEFAULT_BACKBONE = Path("models/plankton") / BACKBONE_FILE


def save_backbone(model: PlanktonNet, directory: Path, source: dict[str, Any]) -> Path:
    """Write the backbone of ``model`` and its card into ``directory``; return the .pt path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().cpu().clone()
        for name, tensor in model.state_dict().items()
        if not name.startswith(HEAD_PREFIX) and name not in DATA_BUFFERS
    }
    path = directory / BACKBONE_FILE
    torch.save(state, path)
    widths = [block.conv2[0].out_channels for block in model.stages]
    card = {
        "architecture": f"PlanktonNet backbone: stem {model.stem[0].out_channels} ch + "
        f"residual stages {widths}; load with --pretrained {path}",
        "input": {
            "channels": model.in_channels,
            "value_range": [0, 255],
            "normalised": "per run's data",
        },
        "tensors": len(state),
        "parameters": int(sum(t.numel() for t in state.values() if t.is_floating_point())),
        "source": source,
        "sha256": sha256_file(path),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (directory / BACKBONE_CARD).write_text(json.dumps(card, indent=2) + "\n")
    return path


def backbone_card(path: Path) -> dict[str, Any]:
    """The card beside a backbone file, checked against the file's SHA-256."""
    path = Path(path)
    card_path = path.with_name(BACKBONE_CARD)
    if not card_path.is_file():
        return {"file": str(path), "card": "none (a user's weights file)"}
    card = json.loads(card_path.read_text())
    actual = sha256_file(path)
    if card.get("sha256") != actual:
        msg = (
            f"{path} does not match its card {card_path} (sha256 {actual[:12]} != "
            f"{str(card.get('sha256'))[:12]}); retrain or restore the backbone"
        )
        raise ConfigError(msg)
    return {"file": str(path), **card}


def resolve_pretrained(choice: str | Path | None, *, user_data: bool) -> Path | None:
    """``auto``: the committed backbone for a user's data (none for the synthetic generator,
    which trains from scratch reproducibly); ``none``: scratch; else a weights file path."""
    if choice is None or str(choice) == "none":
        return None
    if str(choice) == "auto":
        if not user_data:
            return None
        found = resolve_model_dir(DEFAULT_BACKBONE.parent) / BACKBONE_FILE
        return found if found.is_file() else None
    return Path(choice)


__all__ = [
    "BACKBONE_CARD",
    "BACKBONE_FILE",
    "DEFAULT_BACKBONE",
    "backbone_card",
    "resolve_pretrained",
    "save_backbone",
]
