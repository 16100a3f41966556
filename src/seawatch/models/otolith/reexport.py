"""Rebuild the otolith detector from its committed graph and export it with other views.

Only the teacher's weights are saved as ``teacher.pt``; the student's live in the graph. The
graph holds every tensor the detector needs: the exporter folded each BatchNorm into the
convolution before it (a bias appears), so :func:`rebuild_detector` builds the network with
those folds (``Conv2d`` with bias, ``Identity`` for BatchNorm) and loads, by the order the
convolutions run in (teacher stem and stages, then the student's), the folded weights; the
named buffers (normalisation, feature scales, smoothing kernel, projection heads) by name; and
the three stage norms, which the exporter turned into the scalar divisors of the three stage
maps, by the order of those divisions. Every shape must fit, and the rebuilt detector with the
trained views must reproduce the committed graph's outputs (ONNX Runtime against ONNX Runtime,
:data:`PARITY_ATOL`) before any other view count is exported: that is the proof that the
variants are the same model. Retraining (24 min, another draw of weights) would not be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from seawatch.contracts.card import ONNX_FILE, ModelCard, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.models.blocks import fold_batchnorm
from seawatch.models.onnx_export import check_parity, ort_session
from seawatch.models.otolith.export import INPUT_NAME, OUTPUTS, export_otolith
from seawatch.models.otolith.network import STAGES, FeatureNet, OtolithMKD, Student
from seawatch.models.otolith.serving_views import trained_views

#: Largest |difference| allowed between the re-exported trained-views graph and the committed
#: one, on scores of about 10..60 (float32 rounding of the same operations in the same order).
PARITY_ATOL = 1e-4
NAMED = ("rgb_mean", "rgb_std", "gray_weights", "gray_mean", "gray_std", "smooth")


def _graph_tensors(graph: onnx.GraphProto) -> tuple[dict[str, np.ndarray], list, list]:
    """Initializers by name, the (weight, bias) of each folded convolution in run order, and
    the scalar divisors (stage norms) in run order."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs, divisors = [], []
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) == 3:
            weight, bias = node.input[1], node.input[2]
            if weight in inits and not weight.startswith("student.heads."):
                convs.append((inits[weight], inits[bias]))
        if node.op_type == "Div" and node.input[1] in inits and inits[node.input[1]].ndim == 0:
            divisors.append(float(inits[node.input[1]]))
    return inits, convs, divisors


def rebuild_detector(model_dir: Path, card: ModelCard | None = None) -> OtolithMKD:
    """The torch detector of the artifact at ``model_dir``, from its graph alone (eval mode,
    with the trained views)."""
    model_dir = Path(model_dir)
    card = card or load_card(model_dir)
    plan = (card.training.model_extra or {}).get("plan") or {}
    missing = [k for k in ("widths", "teacher_depth", "stem_stride") if k not in plan]
    if missing:
        msg = f"{model_dir}/card.json training.plan lacks {missing}; cannot rebuild the network"
        raise ConfigError(msg)
    graph = onnx.load(str(model_dir / ONNX_FILE)).graph
    inits, convs, divisors = _graph_tensors(graph)
    widths = tuple(int(w) for w in plan["widths"])
    teacher = FeatureNet(3, widths, int(plan["stem_stride"]), int(plan["teacher_depth"]))
    n_teacher = 1 + STAGES * teacher.depth
    if len(convs) <= n_teacher:
        msg = f"{model_dir / ONNX_FILE} has {len(convs)} folded convolutions; not an MKD graph"
        raise ConfigError(msg)
    student_channels = int(convs[n_teacher][0].shape[1])
    student = Student(student_channels, widths, int(plan["stem_stride"]))
    model = OtolithMKD(
        teacher,
        student,
        student_input="gray" if student_channels == 1 else "rgb",
        rgb_mean=tuple(float(v) for v in inits["rgb_mean"].ravel()),  # type: ignore[arg-type]
        rgb_std=tuple(float(v) for v in inits["rgb_std"].ravel()),  # type: ignore[arg-type]
        direction_weight=float(plan.get("direction_weight", 1.0)),
    )
    model.top_k = int(card.metrics.get("validation", {}).get("top_k", 1))
    folded = fold_batchnorm(model.teacher) + fold_batchnorm(model.student.body)
    if len(folded) != len(convs) or len(divisors) != STAGES:
        msg = (
            f"{model_dir / ONNX_FILE}: {len(convs)} convolutions and {len(divisors)} stage "
            f"norms, the plan's network has {len(folded)} and {STAGES}; cannot rebuild it"
        )
        raise ConfigError(msg)
    with torch.no_grad():
        for module, (weight, bias) in zip(folded, convs, strict=True):
            _copy(module.weight, weight, "convolution weight")
            _copy(module.bias, bias, "convolution bias")
        state = model.state_dict()
        for name in [*NAMED, *(f"feature_scale{k}" for k in range(STAGES))]:
            _copy(state[name], inits[name], name)
        for name, value in inits.items():
            if name.startswith("student.heads."):
                _copy(state[name], value, name)
        model.stage_norm.copy_(torch.tensor(divisors))
    model.views = trained_views(card)
    return model.eval()


def _copy(target: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(target.shape) != tuple(value.shape):
        msg = f"{what}: graph shape {value.shape} does not fit the network's {tuple(target.shape)}"
        raise ConfigError(msg)
    target.copy_(torch.from_numpy(np.array(value, np.float32)))


def graph_difference(a: Path, b: Path, batch: np.ndarray) -> float:
    """Largest |difference| of every output of two graphs on ``batch`` (ONNX Runtime)."""
    one, two = ort_session(a), ort_session(b)
    return max(
        float(np.abs(x - y).max())
        for x, y in zip(
            one.run(OUTPUTS, {INPUT_NAME: batch}),
            two.run(OUTPUTS, {INPUT_NAME: batch}),
            strict=True,
        )
    )


def export_views(
    model: OtolithMKD, views: int, path: Path, batch: np.ndarray, *, size: int
) -> dict[str, Any]:
    """Export ``model`` with ``views`` to ``path``; the torch-vs-ONNX Runtime difference on
    ``batch`` (refused above 1e-4, as training's export is)."""
    trained = model.views
    model.views = views
    try:
        export_otolith(model, path, size)
        diff = check_parity(model, path, batch, atol=1e-4, rtol=1e-4)
    finally:
        model.views = trained
    return {"torch_vs_onnx_max_abs_diff": float(f"{diff:.3g}")}


def check_rebuilt(
    model: OtolithMKD, committed: Path, scratch: Path, batch: np.ndarray, *, size: int
) -> float:
    """Export the rebuilt ``model`` with its trained views to ``scratch`` and return its largest
    difference from the ``committed`` graph; ConfigError above :data:`PARITY_ATOL`."""
    export_otolith(model, scratch, size)
    diff = graph_difference(committed, scratch, batch)
    if not diff <= PARITY_ATOL:
        msg = (
            f"the detector rebuilt from {committed} differs from it by {diff:.3g} "
            f"(> {PARITY_ATOL}) with its own {model.views} views; it is not the committed model"
        )
        raise ConfigError(msg)
    return diff


__all__ = ["PARITY_ATOL", "check_rebuilt", "export_views", "graph_difference", "rebuild_detector"]
