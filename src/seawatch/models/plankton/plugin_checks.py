"""What the plankton plug-in offers besides its head: sample inputs like live ones (parity
checks, INT8 calibration), one image as a model input, and the validation score a model
must keep through a live swap."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from pydantic import Field

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.objects import SegmentedObject
from seawatch.contracts.preprocess import (
    batch_tensor,
    nchw,
    prepare_crop,
    prepare_roi,
    prepare_roi_colour,
    to_colour8,
)
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


def _tinted(gray: np.ndarray, i: int) -> np.ndarray:
    """A gray ROI as BGR, its object tinted one of three ways (colour models' samples)."""
    darkness = 255.0 - gray.astype(np.float32)
    tint = np.roll(np.array([0.25, 0.0, -0.25], np.float32), i % 3)
    bgr = gray.astype(np.float32)[:, :, None] + darkness[:, :, None] * tint
    return np.clip(bgr, 0, 255).astype(np.uint8)


def sample_inputs(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """``n`` classifier inputs like live ones: synthetic ROIs of every taxon, one in five
    dark-field, tinted for a colour model (N x C x S x S float32 0..255, C and S the card's)."""
    from seawatch.models.plankton.synthetic import TAXA, render_roi

    rng = np.random.default_rng(seed)
    size, channels = card.input.size, card.input.channels
    crops = []
    for i in range(n):
        roi = render_roi(TAXA[i % len(TAXA)], rng, dark_field=i % 5 == 4)
        crops.append(prepare_crop(_tinted(roi, i) if channels == 3 else roi, size, channels))
    return nchw(np.stack(crops))


def model_input(card: ModelCard, image: np.ndarray) -> np.ndarray:
    """One decoded ROI image -> one classifier input (C x S x S float32)."""
    crop = prepare_crop(image, card.input.size, card.input.channels)
    return nchw(crop[None])[0]


def classifier_crops(
    image: np.ndarray, objects: list[SegmentedObject], size: int, channels: int
) -> list[np.ndarray]:
    """Each object's classifier input: its gray crop fitted to ``size`` for a gray model;
    for a colour model, the same box cut from the decoded colour frame (objects are found
    and measured on gray either way)."""
    if channels == 1:
        return [prepare_roi(obj.image, size) for obj in objects]
    colour = to_colour8(image)
    return [
        prepare_roi_colour(colour[y : y + h, x : x + w], size)
        for x, y, w, h in (obj.bbox for obj in objects)
    ]


def check_model_cut(card: ModelCard, directory: Path) -> None:
    """Full frames cut by the segmentation model give gray crops: a colour classifier
    cannot take them (ConfigError naming the fix)."""
    if card.input.channels != 1:
        msg = (
            f"{directory}: a colour (3-channel) classifier is served with "
            "ingest.segmentation.method threshold only (the segmentation model cuts gray "
            "crops); set method: threshold, or train the classifier with --colour gray"
        )
        raise ConfigError(msg)


VALIDATION_SEED, VALIDATION_PER_CLASS = 1_000_003, 20  # the training's validation stream


@functools.cache
def _validation_set(
    folder: Path | None, size: int, channels: int = 1
) -> tuple[np.ndarray, list[str]]:
    """Prepared crops and their class names: the folder's, or a synthetic validation draw
    (gray: a colour model is validated on its own folder only)."""
    if folder is not None:
        from seawatch.models.plankton.datasets import load_image_folder

        data = load_image_folder(folder, size=size, channels=channels)
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
    channels = head.card.input.channels
    synthetic_taxa = set(head.card.class_names) == set(TAXA) and channels == 1
    if options.validation_dir is None and not synthetic_taxa:
        return None
    images, names = _validation_set(options.validation_dir, head.input_size, channels)
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
    "check_model_cut",
    "classifier_crops",
    "model_input",
    "sample_inputs",
    "validate",
]
