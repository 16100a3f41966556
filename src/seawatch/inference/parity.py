"""Does a backend compute what ONNX Runtime on the CPU computes? Refuse it if not.

A candidate (a TensorRT engine, ONNX Runtime on a GPU, torch on CUDA, an FP16 graph) runs
the same sample inputs as the reference, ONNX Runtime CPU on the FP32 graph. Each output is
compared at its own scale, by its kind, read from the reference's values:

==============  =========================================  ====================================
kind            what                                       error, relative to
==============  =========================================  ====================================
probabilities   N x K, non-negative rows summing to 1      1 (absolute: probabilities are
                (a classifier's)                           unitless); and top-1 agreement
embedding       any other N x D (features, L2-normalised   each row's L2 norm: ||g - w|| / ||w||
                vectors)
score           N values (an anomaly score: tens to        each value: |g - w| / |w|
                hundreds for the otolith detector)
map             N x H x W... (an anomaly heat map)         each sample's peak: max |g - w| /
                                                           max |w|
==============  =========================================  ====================================

A score or a map's peak is floored at the median of its output's (a normal specimen's
score is small, and its error is judged against the typical score, where the decision
threshold lies), an embedding's norm at 1 % of its output's 99th percentile, so a value near
zero cannot make a harmless absolute error look large. The worst relative error over every output
and the top-1 agreement of a probabilities output decide; outside the tolerance the candidate
is refused with a BackendError that names each output's error and the limits.

Sample inputs are what the model sees live: images rendered by the task's synthetic generator
and prepared by the model's own pre-processing (the plug-in's ``sample_inputs``), images from
a folder, or seeded noise in the input's value range for a task without a generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import BackendError
from seawatch.contracts.image_files import IMAGE_SUFFIXES
from seawatch.inference.backend import Backend

OutputKind = Literal["probabilities", "embedding", "score", "map"]
_FLOOR_SHARE = 0.01  # embeddings: errors relative to at least 1 % of the output's p99 norm


@dataclass(frozen=True)
class Tolerance:
    """The least top-1 agreement (probabilities) and the largest relative error of any
    output, each at its own scale (see the module docstring)."""

    min_top1: float
    max_rel_diff: float


# FP32 differs from ORT by kernel choice and summation order only; FP16 by rounding (a
# relative 1e-3 per value, some accumulated); INT8 by quantisation.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_top1=0.99, max_rel_diff=1e-3),
    "fp16": Tolerance(min_top1=0.98, max_rel_diff=2e-2),
    "int8": Tolerance(min_top1=0.95, max_rel_diff=1e-1),
}


@dataclass(frozen=True)
class OutputParity:
    """One output compared: its kind, its worst relative and absolute error."""

    name: str
    kind: OutputKind
    rel_diff: float
    abs_diff: float

    def as_record(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "rel_diff": self.rel_diff,
            "abs_diff": self.abs_diff,
        }


@dataclass(frozen=True)
class ParityReport:
    """What the comparison measured, and whether it passed."""

    samples: int
    top1_agreement: float | None
    outputs: tuple[OutputParity, ...]
    tolerance: Tolerance

    @property
    def max_rel_diff(self) -> float:
        return max(o.rel_diff for o in self.outputs)

    @property
    def passed(self) -> bool:
        top1_ok = self.top1_agreement is None or self.top1_agreement >= self.tolerance.min_top1
        return top1_ok and self.max_rel_diff <= self.tolerance.max_rel_diff

    def summary(self) -> str:
        top1 = "n/a" if self.top1_agreement is None else f"{self.top1_agreement:.4f}"
        each = " ".join(f"{o.name}[{o.kind}]={o.rel_diff:.3g}" for o in self.outputs)
        return (
            f"samples={self.samples} top1_agreement={top1} (min {self.tolerance.min_top1:g}) "
            f"rel_diff {each} (max {self.tolerance.max_rel_diff:g})"
        )

    def as_record(self) -> dict[str, object]:
        """JSON-ready, for an engine's sidecar and gpu.json."""
        return {
            "passed": self.passed,
            "samples": self.samples,
            "top1_agreement": self.top1_agreement,
            "min_top1": self.tolerance.min_top1,
            "max_rel_diff": self.max_rel_diff,
            "tolerance_rel": self.tolerance.max_rel_diff,
            "outputs": [o.as_record() for o in self.outputs],
        }


def output_kind(reference: np.ndarray) -> OutputKind:
    """The kind of one reference output (N leading), read from its shape and values."""
    if reference.ndim == 1:
        return "score"
    if reference.ndim >= 3:
        return "map"
    rows = reference.sum(axis=1)
    if reference.shape[1] > 1 and reference.min() >= -1e-6 and np.allclose(rows, 1, atol=1e-3):
        return "probabilities"
    return "embedding"


def relative_error(got: np.ndarray, want: np.ndarray, kind: OutputKind) -> float:
    """The worst error of ``got`` against ``want`` at the scale of ``kind`` (module table)."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    if kind == "probabilities":
        return float(np.max(np.abs(got - want)))
    if kind == "embedding":
        norms = np.linalg.norm(want, axis=1)
        floor = max(float(np.percentile(norms, 99)) * _FLOOR_SHARE, 1e-12)
        return float(np.max(np.linalg.norm(got - want, axis=1) / np.maximum(norms, floor)))
    flat_got, flat_want = got.reshape(len(got), -1), want.reshape(len(want), -1)
    scale = np.max(np.abs(flat_want), axis=1)  # a score's own size, a map's peak
    floor = max(float(np.median(scale)), 1e-12)
    error = np.max(np.abs(flat_got - flat_want), axis=1)
    return float(np.max(error / np.maximum(scale, floor)))


def compare(
    candidate: Backend,
    reference: Backend,
    inputs: np.ndarray,
    *,
    chunk: int = 32,
    top1: bool = True,
    names: Sequence[str] = (),
) -> tuple[float | None, tuple[OutputParity, ...]]:
    """Run ``inputs`` through both in chunks of ``chunk``; return the top-1 agreement (of the
    first probabilities output, when ``top1``: pass ``bool(card.class_names)``; else None)
    and each output's comparison (``names``: the card's output names, else their index)."""
    if len(inputs) == 0:
        raise BackendError("parity check needs at least one sample input")
    got_parts: list[list[np.ndarray]] = []
    want_parts: list[list[np.ndarray]] = []
    for start in range(0, len(inputs), chunk):
        batch = np.ascontiguousarray(inputs[start : start + chunk], dtype=np.float32)
        got, want = candidate.run_outputs(batch), reference.run_outputs(batch)
        if len(got) != len(want):
            msg = f"candidate {candidate.name} has {len(got)} outputs, reference {len(want)}"
            raise BackendError(msg)
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            g, w = np.asarray(g, dtype=np.float32), np.asarray(w, dtype=np.float32)
            if g.shape != w.shape:
                msg = f"{candidate.name} output {index} shape {g.shape} != reference {w.shape}"
                raise BackendError(msg)
            if index == len(got_parts):
                got_parts.append([])
                want_parts.append([])
            got_parts[index].append(g)
            want_parts[index].append(w)
    outputs, agreement = [], None
    for index, (gs, ws) in enumerate(zip(got_parts, want_parts, strict=True)):
        g, w = np.concatenate(gs), np.concatenate(ws)
        kind = output_kind(w)
        name = names[index] if index < len(names) else str(index)
        if not np.isfinite(g).all():
            outputs.append(OutputParity(name, kind, float("inf"), float("inf")))
            continue
        abs_diff = float(np.max(np.abs(g - w))) if g.size else 0.0
        outputs.append(OutputParity(name, kind, relative_error(g, w, kind), abs_diff))
        if top1 and agreement is None and kind == "probabilities":
            agreement = float(np.mean(g.argmax(axis=1) == w.argmax(axis=1)))
    return agreement, tuple(outputs)


def check_parity(
    candidate: Backend,
    reference: Backend,
    inputs: np.ndarray,
    tolerance: Tolerance,
    *,
    chunk: int = 32,
    top1: bool = True,
    names: Sequence[str] = (),
) -> ParityReport:
    """Compare and return the report; raise BackendError if the candidate is out of tolerance."""
    agreement, outputs = compare(candidate, reference, inputs, chunk=chunk, top1=top1, names=names)
    report = ParityReport(len(inputs), agreement, outputs, tolerance)
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


def verify_backend(
    candidate: Backend,
    model_dir: Path,
    precision: str,
    *,
    make: InputMaker | None = None,
    samples: int = 32,
    chunk: int = 32,
) -> ParityReport:
    """Check an opened GPU backend against ONNX Runtime CPU on ``samples`` of the task's own
    inputs (``make``) before it serves; BackendError outside ``precision``'s tolerance."""
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend

    card = load_card(model_dir)
    inputs = sample_inputs(card, samples, seed=0, make=make)
    with OnnxRuntimeBackend(Path(model_dir) / ONNX_FILE) as reference:
        return check_parity(
            candidate,
            reference,
            inputs,
            TOLERANCES[precision],
            chunk=chunk,
            top1=bool(card.class_names),
            names=card.outputs or [card.output],
        )


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
    "OutputKind",
    "OutputParity",
    "ParityReport",
    "Tolerance",
    "check_parity",
    "compare",
    "folder_inputs",
    "iter_batches",
    "output_kind",
    "relative_error",
    "sample_inputs",
    "verify_backend",
]
