"""Does a backend compute what ONNX Runtime on the CPU computes? Refuse it if not.

A candidate (a TensorRT engine, ONNX Runtime on a GPU, an FP16 graph) runs the same sample
inputs as the reference, ONNX Runtime CPU on the FP32 graph. Two numbers decide: the share
of samples whose top-1 class agrees (classifier outputs) and the largest absolute difference
over every output. Outside the tolerance the candidate is refused with a BackendError that
names both numbers and both limits.

Sample inputs are what the model sees live: crops rendered by the project's synthetic
generators (plankton, fish) and prepared by the model's own pre-processing, images from a
folder, or seeded noise in the input's value range for other tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import BackendError
from seawatch.contracts.image_files import IMAGE_SUFFIXES
from seawatch.inference.backend import Backend


@dataclass(frozen=True)
class Tolerance:
    """The least top-1 agreement and the largest absolute output difference accepted."""

    min_top1: float
    max_abs_diff: float


# FP32 engines differ from ORT only by kernel choice; FP16 by rounding (outputs here are
# probabilities and L2-normalised embeddings, so 0..1); INT8 by quantisation.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_top1=0.99, max_abs_diff=1e-3),
    "fp16": Tolerance(min_top1=0.98, max_abs_diff=2e-2),
    "int8": Tolerance(min_top1=0.95, max_abs_diff=1e-1),
}


@dataclass(frozen=True)
class ParityReport:
    """What the comparison measured, and whether it passed."""

    samples: int
    top1_agreement: float | None
    max_abs_diff: float
    output_diffs: tuple[float, ...]
    tolerance: Tolerance

    @property
    def passed(self) -> bool:
        top1_ok = self.top1_agreement is None or self.top1_agreement >= self.tolerance.min_top1
        return top1_ok and self.max_abs_diff <= self.tolerance.max_abs_diff

    def summary(self) -> str:
        top1 = "n/a" if self.top1_agreement is None else f"{self.top1_agreement:.4f}"
        return (
            f"samples={self.samples} top1_agreement={top1} (min {self.tolerance.min_top1:g}) "
            f"max_abs_diff={self.max_abs_diff:.3g} (max {self.tolerance.max_abs_diff:g})"
        )

    def as_record(self) -> dict[str, object]:
        """JSON-ready, for an engine's sidecar."""
        return {
            "passed": self.passed,
            "samples": self.samples,
            "top1_agreement": self.top1_agreement,
            "max_abs_diff": self.max_abs_diff,
            "min_top1": self.tolerance.min_top1,
            "tolerance_abs": self.tolerance.max_abs_diff,
        }


def compare(
    candidate: Backend,
    reference: Backend,
    inputs: np.ndarray,
    *,
    chunk: int = 32,
    top1: bool = True,
) -> tuple[float | None, float, tuple[float, ...]]:
    """Run ``inputs`` through both in chunks of ``chunk``; return (top-1 agreement or None,
    max |diff| over all outputs, max |diff| per output). Top-1 is measured on the first
    output when ``top1`` (a classifier: pass ``bool(card.class_names)``) and it is N x K."""
    if len(inputs) == 0:
        raise BackendError("parity check needs at least one sample input")
    agree = 0
    per_output: list[float] = []
    classifier = top1
    for start in range(0, len(inputs), chunk):
        batch = np.ascontiguousarray(inputs[start : start + chunk], dtype=np.float32)
        got = candidate.run_outputs(batch)
        want = reference.run_outputs(batch)
        if len(got) != len(want):
            msg = f"candidate {candidate.name} has {len(got)} outputs, reference {len(want)}"
            raise BackendError(msg)
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            g, w = np.asarray(g, dtype=np.float32), np.asarray(w, dtype=np.float32)
            if g.shape != w.shape:
                msg = f"{candidate.name} output {index} shape {g.shape} != reference {w.shape}"
                raise BackendError(msg)
            diff = float(np.max(np.abs(g - w))) if g.size else 0.0
            if not np.isfinite(diff):
                diff = float("inf")
            if index == len(per_output):
                per_output.append(diff)
            else:
                per_output[index] = max(per_output[index], diff)
        first_got, first_want = np.asarray(got[0]), np.asarray(want[0])
        classifier = classifier and first_want.ndim == 2 and first_want.shape[1] > 1
        if classifier:
            agree += int(np.sum(first_got.argmax(axis=1) == first_want.argmax(axis=1)))
    top1 = agree / len(inputs) if classifier else None
    return top1, max(per_output), tuple(per_output)


def check_parity(
    candidate: Backend,
    reference: Backend,
    inputs: np.ndarray,
    tolerance: Tolerance,
    *,
    chunk: int = 32,
    top1: bool = True,
) -> ParityReport:
    """Compare and return the report; raise BackendError if the candidate is out of tolerance."""
    agreement, worst, per_output = compare(candidate, reference, inputs, chunk=chunk, top1=top1)
    report = ParityReport(len(inputs), agreement, worst, per_output, tolerance)
    if not report.passed:
        msg = (
            f"backend {candidate.name} refused: it disagrees with ONNX Runtime CPU beyond "
            f"tolerance: {report.summary()}; rebuild in a higher precision (--precision fp32) "
            "or check the ONNX graph"
        )
        raise BackendError(msg)
    return report


InputMaker = Callable[[ModelCard, int, int], np.ndarray]  # card, n, seed -> model inputs
ImageInput = Callable[[ModelCard, np.ndarray], np.ndarray]  # card, decoded image -> one input


def sample_inputs(
    card: ModelCard, n: int, *, seed: int = 0, make: InputMaker | None = None
) -> np.ndarray:
    """``n`` model inputs (N x C x H x W float32), reproducible by seed: the task's own
    (``make``, its plug-in's ``sample_inputs``: images like live ones), else uniform noise
    over the card's value range."""
    if make is not None:
        return make(card, n, seed)
    rng = np.random.default_rng(seed)
    spec = card.input
    low, high = spec.value_range
    shape = (n, spec.channels, spec.height, spec.width)
    return rng.uniform(low, high, size=shape).astype(np.float32)


def folder_inputs(
    card: ModelCard, folder: Path, *, limit: int = 512, model_input: ImageInput | None = None
) -> np.ndarray:
    """Up to ``limit`` images from ``folder`` (sorted by name) as model inputs, through the
    task's own ``model_input`` (its plug-in's), else resized and put in planar order."""
    import cv2

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        msg = f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}"
        raise BackendError(msg)
    spec = card.input
    inputs = []
    for path in paths[:limit]:
        flag = cv2.IMREAD_GRAYSCALE if spec.channels == 1 else cv2.IMREAD_COLOR
        image = cv2.imread(str(path), flag)
        if image is None:
            msg = f"cannot read image {path}; remove it from the calibration folder"
            raise BackendError(msg)
        if model_input is not None:
            inputs.append(model_input(card, image))
            continue
        resized = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
        resized = resized[:, :, None] if resized.ndim == 2 else resized[:, :, ::-1]
        inputs.append(np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32))
    return np.stack(inputs)


def iter_batches(inputs: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """Consecutive full batches of ``inputs`` (a partial last batch is dropped)."""
    for start in range(0, len(inputs) - batch + 1, batch):
        yield np.ascontiguousarray(inputs[start : start + batch], dtype=np.float32)


__all__ = [
    "TOLERANCES",
    "ImageInput",
    "InputMaker",
    "ParityReport",
    "Tolerance",
    "check_parity",
    "compare",
    "folder_inputs",
    "iter_batches",
    "sample_inputs",
]
