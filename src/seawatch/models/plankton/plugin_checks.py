"""What the plankton plug-in offers besides its head: sample inputs like live ones (parity
checks, INT8 calibration), one image as a model input, and the validation score a model
must keep through a live swap."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from pydantic import Field

from seawatch.contracts.card import ModelCard
from seawatch.contracts.preprocess import batch_tensor, prepare_roi, to_gray8
from seawatch.contracts.task import TaskOptions, parse_options

TASK = "plankton"


class PlanktonOptions(TaskOptions):
    """``tasks.plankton.options``."""

    top_k: int = Field(3, ge=1, le=20, description="candidates kept per object")
    validation_dir: Path | None = Field(
        None,
        description="an ImageFolder a new model must score on before a live swap (default: "
        "the synthetic validation draw, for models of the synthetic taxa)",
    )


def sample_inputs(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """``n`` classifier inputs like live ones: synthetic ROIs of every taxon, one in five
    dark-field (N x 1 x S x S float32 0..255)."""
    from seawatch.models.plankton.synthetic import TAXA, render_roi

    rng = np.random.default_rng(seed)
    crops = [
        prepare_roi(render_roi(TAXA[i % len(TAXA)], rng, dark_field=i % 5 == 4), card.input.size)
        for i in range(n)
    ]
    return np.stack(crops).astype(np.float32)[:, None]


def model_input(card: ModelCard, image: np.ndarray) -> np.ndarray:
    """One decoded ROI image -> one classifier input (1 x S x S float32)."""
    return prepare_roi(to_gray8(image), card.input.size).astype(np.float32)[None]


VALIDATION_SEED, VALIDATION_PER_CLASS = 1_000_003, 20  # the training's validation stream


@functools.cache
def _validation_set(folder: Path | None, size: int) -> tuple[np.ndarray, list[str]]:
    """Prepared crops and their class names: the folder's, or a synthetic validation draw."""
    if folder is not None:
        from seawatch.models.plankton.datasets import load_image_folder

        data = load_image_folder(folder, size=size)
        return data.images, [data.class_names[i] for i in data.labels]
    from seawatch.models.plankton.synthetic import TAXA, make_dataset

    rng = np.random.default_rng(VALIDATION_SEED)
    images, labels = make_dataset(VALIDATION_PER_CLASS, rng, size=size)
    return images, [TAXA[i] for i in labels]


def validate(head, task) -> float | None:
    """Macro-F1 of ``head`` on the validation set (``options.validation_dir``, else the
    synthetic draw when the model's classes are the synthetic taxa); None without one."""
    from seawatch.models.plankton.evaluate import classification_metrics
    from seawatch.models.plankton.synthetic import TAXA

    options = parse_options(PlanktonOptions, TASK, task.options)
    if options.validation_dir is None and set(head.card.class_names) != set(TAXA):
        return None
    images, names = _validation_set(options.validation_dir, head.input_size)
    known = [n in head.card.class_names for n in names]
    classes = list(head.card.class_names)
    truth = np.array([classes.index(n) for n, k in zip(names, known, strict=True) if k])
    probs = head.infer(batch_tensor(list(images[np.array(known)]))).probs
    return classification_metrics(truth, probs.argmax(1), classes)["macro_f1"]


__all__ = [
    "TASK",
    "VALIDATION_PER_CLASS",
    "VALIDATION_SEED",
    "PlanktonOptions",
    "model_input",
    "sample_inputs",
    "validate",
]
