"""A fourth task, defined entirely outside src/: "toy" scores how bright a frame is.

It is what a user's own task looks like: a :class:`TaskPlugin` named in the settings
(``tasks.toy.plugin: tests.toy_task:PLUGIN``), a head with the four steps, and a model
artifact (``model.onnx`` + ``card.json``) opened through the same loader as the built-in
tasks. The model is a real ONNX graph (the mean of its 8 x 8 gray input), made by
:func:`make_toy_model`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from seawatch.contracts.card import ONNX_FILE, InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.contracts.errors import BackendError
from seawatch.contracts.frames import Frame
from seawatch.contracts.preprocess import to_gray8
from seawatch.contracts.task import (
    PreparedFrame,
    TaskInputs,
    TaskOptions,
    TaskPlugin,
    TaskResult,
    parse_options,
)

TASK = "toy"
SIDE = 8


class ToyOptions(TaskOptions):
    bright_above: float = Field(128.0, ge=0, le=255)
    # a slow model: each inference call takes at least this long (the lane tests)
    infer_s: float = Field(0.0, ge=0, le=30)


class BrightnessHead:
    """The toy task's head: 8 x 8 gray thumbnail in, mean brightness out."""

    name = TASK

    def __init__(self, backend, card: ModelCard, options: ToyOptions) -> None:
        self.backend = backend
        self.card = card
        self.bright_above = options.bright_above
        self.infer_s = options.infer_s

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        small = cv2.resize(to_gray8(image), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        return TaskInputs([small])

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray:
        return np.stack([p.crops[0] for p in frames])[:, None].astype(np.float32)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        if self.infer_s:
            time.sleep(self.infer_s)
        out = np.asarray(self.backend.run(tensor), np.float32).reshape(len(tensor), -1)[:, 0]
        if not np.isfinite(out).all():
            raise BackendError("toy model returned a non-finite brightness")
        return out

    def finish(
        self, frames: Sequence[PreparedFrame], outputs: np.ndarray, infer_ms: float
    ) -> list[TaskResult]:
        per_frame = infer_ms / max(1, len(frames))
        return [
            TaskResult(
                per_frame,
                fields=(
                    ("brightness", round(float(b), 4)),
                    ("bright", bool(b > self.bright_above)),
                ),
            )
            for b in outputs
        ]

    def close(self) -> None:
        self.backend.close()


def _load(task, settings) -> BrightnessHead:
    from seawatch.inference.artifact import open_artifact

    options = parse_options(ToyOptions, TASK, task.options)
    artifact = open_artifact(
        TASK, task.model_dir, settings.inference, max_batch=task.batch(settings.inference.max_batch)
    )
    return BrightnessHead(artifact.backend, artifact.card, options)


def validate(head: BrightnessHead, task) -> float:
    """1 - mean relative error of the brightness of uniform frames at known levels."""
    levels = np.array([20.0, 80.0, 140.0, 200.0], np.float32)
    tensor = np.broadcast_to(levels[:, None, None, None], (4, 1, SIDE, SIDE)).copy()
    return float(1.0 - np.mean(np.abs(head.infer(tensor) - levels) / levels))


def sample_inputs(card: ModelCard, n: int, seed: int) -> np.ndarray:
    """``n`` frames of uniform random brightness."""
    levels = np.random.default_rng(seed).uniform(0, 255, n).astype(np.float32)
    return np.broadcast_to(levels[:, None, None, None], (n, 1, SIDE, SIDE)).copy()


PLUGIN = TaskPlugin(
    name=TASK,
    load=_load,
    sample_inputs=sample_inputs,
    validate=validate,
    description="toy: mean brightness of a frame",
)


def make_toy_model(
    directory: Path,
    *,
    version: str = "0.1.0",
    scale: float = 1.0,
    side: int = SIDE,
    broken: bool = False,
) -> ModelCard:
    """Write a toy artifact: an ONNX graph (``scale`` x the mean over C, H, W of a ``side`` x
    ``side`` input; ``broken``: NaN for every input) and its card."""
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True, exist_ok=True)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, side, side])
    out = helper.make_tensor_value_info("brightness", TensorProto.FLOAT, ["N", 1, 1, 1])
    factor = helper.make_tensor("factor", TensorProto.FLOAT, [], [scale])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "factor"], ["scaled"]),
    ]
    if broken:  # sqrt of a negative number: NaN
        nodes += [
            helper.make_node("Neg", ["scaled"], ["negative"]),
            helper.make_node("Sqrt", ["negative"], ["brightness"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["scaled"], ["brightness"]))
    graph = helper.make_graph(nodes, "toy", [image], [out], initializer=[factor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, directory / ONNX_FILE)
    card = ModelCard(
        task=TASK,
        name="toy-brightness",
        version=version,
        architecture=f"{scale} x ReduceMean over the {side} x {side} gray input (no weights)",
        input=InputSpec(size=side, channels=1, mean=0.0, std=1.0, preprocessing="resize"),
        output="brightness",
        training=TrainingSummary(
            command="tests.toy_task.make_toy_model",
            seed=0,
            data={},
            epochs=0,
            seconds=0.0,
            device="cpu",
        ),
        onnx_sha256=sha256_file(directory / ONNX_FILE),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.write(directory)
    return card
