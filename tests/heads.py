"""Task heads for tests: real task interface, stand-in models (no ONNX session needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from seawatch.contracts.card import ModelCard, load_card
from seawatch.contracts.evidence import thumbnail
from seawatch.contracts.frames import Frame
from seawatch.contracts.task import PreparedFrame, TaskInputs, TaskResult
from seawatch.models.plankton.head import PlanktonClassifier
from tests.conftest import MODEL_DIR


class WholeFrameHead:
    """A head whose frames are one input each, made by ``make`` from the decoded image; its
    "model" sums each input (or raises ``fail``); its result is that sum as a field."""

    def __init__(
        self,
        name: str,
        make: Callable[[np.ndarray], np.ndarray] = lambda image: np.asarray(image, np.float32),
        *,
        keep_thumbnail: bool = False,
        card: ModelCard | None = None,
    ) -> None:
        self.name = name
        self.make = make
        self.keep_thumbnail = keep_thumbnail
        self.card = card or load_card(MODEL_DIR).model_copy(update={"task": name})
        self.fail: Exception | None = None
        self.calls = 0
        self.closed = False

    def prepare(self, frame: Frame, image: np.ndarray) -> TaskInputs:
        from seawatch.contracts.errors import FrameError

        try:
            made = self.make(image)
        except ValueError as exc:
            raise FrameError("prepare", f"{self.name} input: {exc}") from exc
        return TaskInputs([made], thumbnail=thumbnail(image) if self.keep_thumbnail else None)

    def stack(self, frames: Sequence[PreparedFrame]) -> np.ndarray:
        return np.stack([np.asarray(p.crops[0], np.float32).ravel()[:4] for p in frames])

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return tensor.sum(axis=1)

    def finish(
        self, frames: Sequence[PreparedFrame], outputs: np.ndarray, infer_ms: float
    ) -> list[TaskResult]:
        return [TaskResult(infer_ms, fields=(("total", float(v)),)) for v in outputs]

    def close(self) -> None:
        self.closed = True


def plankton_preparing_head() -> PlanktonClassifier:
    """The real plankton head (segmentation, crops) over the committed card; its backend is
    never called by ``prepare``."""
    return PlanktonClassifier(None, load_card(MODEL_DIR), max_batch=64, top_k=3)  # type: ignore[arg-type]
