"""Re-export a plankton artifact so its graph has every output the OOD score reads.

The exported graph's outputs are :data:`~.export.OUTPUT_NAMES`: ``probs``, the penultimate
``features`` and ``stage3`` (the third stage's map pooled to channel means and standard
deviations). Committed graphs were exported with fewer (``probs`` alone, then ``(probs,
features)``). Their weights are all in the repository: ``backbone.pt`` holds the stem and
the residual stages (with BatchNorm statistics), and the graph's own initializers hold the
rest (``mean``, ``std``, ``temperature``, ``head.2.weight``, ``head.2.bias``, named by the
torch exporter). This module loads both back into :class:`PlanktonNet` (strict: every tensor
must fit), exports all outputs and refuses the result unless its ``probs`` (and
``features``, where the old graph had them) equal the old graph's on synthetic ROIs and
noise (ONNX Runtime against ONNX Runtime, max |diff| <= 1e-5) and the torch network agrees
with the new graph on every output. Retraining (276 s, a new random draw of weights) would
not give the same model; this gives the same classes bit-for-bit up to float rounding.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from seawatch.contracts.card import ONNX_FILE, load_card, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.backbone import BACKBONE_FILE, backbone_card
from seawatch.models.plankton.export import (
    FEATURES_NAME,
    OUTPUT_NAME,
    OUTPUT_NAMES,
    check_parity,
    export_onnx,
    exported,
    ort_session,
)
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.views_choice import card_views

GRAPH_TENSORS = ("mean", "std", "temperature", "head.2.weight", "head.2.bias")
PROBS_ATOL = 1e-5


def graph_outputs(onnx_path: Path) -> list[str]:
    """The output names of an ONNX graph."""
    return [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]


def rebuild_network(model_dir: Path) -> PlanktonNet:
    """The torch network of a plankton artifact, from ``backbone.pt`` and the graph's head."""
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    backbone = model_dir / card.files.get("backbone", BACKBONE_FILE)
    if not backbone.is_file():
        msg = f"{backbone} is missing: the artifact cannot be re-exported without its backbone"
        raise ConfigError(msg)
    backbone_card(backbone)  # checks the backbone against its card's SHA-256
    state = torch.load(backbone, map_location="cpu", weights_only=True)
    graph = onnx.load(str(model_dir / ONNX_FILE))
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    inits |= {k.removeprefix("net."): v for k, v in inits.items()}  # WithFeatures's names
    missing = [name for name in GRAPH_TENSORS if name not in inits]
    if missing:
        msg = f"{model_dir / ONNX_FILE} lacks the initializers {missing}; retrain instead"
        raise ConfigError(msg)
    state |= {name: torch.from_numpy(np.array(inits[name])) for name in GRAPH_TENSORS}
    net = PlanktonNet(len(card.class_names), in_channels=card.input.channels)
    net.load_state_dict(state, strict=True)
    return net.eval()


def _max_diffs(old: Path, new: Path, batch: np.ndarray, names: list[str]) -> dict[str, float]:
    """Max |diff| of each output of ``names`` between two graphs on ``batch`` (ONNX Runtime
    both, one run each)."""
    want = ort_session(old).run(names, {"image": batch})
    got = ort_session(new).run(names, {"image": batch})
    return {n: float(np.abs(a - b).max()) for n, a, b in zip(names, want, got, strict=True)}


def add_features_output(model_dir: Path, *, command: str) -> dict[str, Any]:
    """Re-export ``model_dir/model.onnx`` with every output of :data:`OUTPUT_NAMES` and
    update its card (the weights unchanged; an earlier re-export's record is kept under
    ``earlier``). A graph that already has them all is left alone. Returns the parity report.
    """
    from seawatch.models.plankton.head import sample_inputs

    model_dir = Path(model_dir)
    onnx_path = model_dir / ONNX_FILE
    before = graph_outputs(onnx_path)
    if all(name in before for name in OUTPUT_NAMES):
        return {"reexported": False, "outputs": before}
    card = load_card(model_dir)
    net = rebuild_network(model_dir)
    rois = sample_inputs(card, 64, seed=7_100_101)
    noise = np.random.default_rng(7_100_102).uniform(0, 255, (16, *rois.shape[1:]))
    batch = np.concatenate([rois, noise.astype(np.float32)])
    kept = [name for name in (OUTPUT_NAME, FEATURES_NAME) if name in before]
    views = card_views(card)
    with tempfile.TemporaryDirectory() as tmp:
        new = export_onnx(
            net,
            Path(tmp) / ONNX_FILE,
            size=card.input.size,
            channels=card.input.channels,
            views=views,
        )
        diffs = _max_diffs(onnx_path, new, batch, kept)
        for name, diff in diffs.items():
            if not diff <= PROBS_ATOL:
                msg = (
                    f"re-exported {onnx_path} differs from the committed {name} by {diff:.3g} "
                    f"(> {PROBS_ATOL}); the rebuilt network is not the committed one"
                )
                raise ConfigError(msg)
        torch_diff = check_parity(exported(net, views), new, batch)
        shutil.copyfile(new, onnx_path)
    report = {
        "reexported": True,
        "command": command,
        "outputs": list(OUTPUT_NAMES),
        "previous_outputs": before,
        "probs_max_abs_diff_vs_previous_graph": diffs[OUTPUT_NAME],
    }
    if FEATURES_NAME in diffs:
        report["features_max_abs_diff_vs_previous_graph"] = diffs[FEATURES_NAME]
    report |= {
        "torch_vs_onnx_max_abs_diff": torch_diff,
        "previous_onnx_sha256": card.onnx_sha256,
        "checked_on": f"{len(rois)} synthetic ROIs + {len(noise)} noise images",
    }
    if "reexport" in card.metrics:
        report["earlier"] = card.metrics["reexport"]
    metrics = dict(card.metrics) | {"reexport": report}
    card = card.model_copy(
        update={
            "outputs": list(OUTPUT_NAMES),
            "onnx_sha256": sha256_file(onnx_path),
            "metrics": metrics,
        }
    )
    card.write(model_dir)
    return report


__all__ = ["GRAPH_TENSORS", "add_features_output", "graph_outputs", "rebuild_network"]
