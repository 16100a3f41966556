"""Where the plankton classifier's labelled images come from, and how they are split.

- the synthetic generator: three seeds (train / validation / test), 64 px gray;
- a user's ImageFolder or EcoTaxa export: the classifier's input (gray or colour, the square
  side) is chosen from the images first (:mod:`.input_choice`); a given ``--val-dir`` /
  ``--test-dir`` is used as it is and what is not given is split off the training folder per
  class (seeded); a small set without a validation folder is cross-validated instead
  (:mod:`.crossval`): no validation split, and the test split only when a folder is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.crossval import folds_for
from seawatch.models.plankton.datasets import (
    LabelledSet,
    ecotaxa_items,
    image_folder_items,
    load_ecotaxa,
    load_image_folder,
    stratified_split,
)
from seawatch.models.plankton.input_choice import (
    DEFAULT_SIZE,
    Colour,
    choose_channels,
    choose_size,
    look_at,
)
from seawatch.models.plankton.model_segmented import (
    HARD_SHARE,
    MIN_SHARE,
    check_segmentation_model,
)
from seawatch.models.plankton.synthetic_sets import (
    MODEL_SEGMENTED_SEED_OFFSET,
    MODEL_SEGMENTED_SHARE,
    SEGMENTED,
    SEGMENTED_SHARE,
    SPLIT_SEED_OFFSETS,
    synthetic_split,
)

USER_SPLIT = (0.70, 0.15, 0.15)


@dataclass(frozen=True, slots=True)
class PlanktonData:
    """Where the labelled images come from: the generator, an ImageFolder or EcoTaxa, and
    how a user's images are read (``colour``, ``input_size``: None chooses from the images)
    and validated (``folds``: None decides from the set's size, 0 never cross-validates)."""

    data_dir: Path | None = None
    ecotaxa: Path | None = None
    validated_only: bool = False
    n_per_class: int = 900
    val_per_class: int | None = None
    imbalance: float = 4.0
    segmented_share: float = SEGMENTED_SHARE
    segmentation_model: Path | None = None  # synthetic: also crops this network cuts
    model_segmented_share: float = MODEL_SEGMENTED_SHARE
    val_dir: Path | None = None
    test_dir: Path | None = None
    colour: Colour = "auto"
    input_size: int | None = None
    folds: int | None = None
    unlabelled_dir: Path | None = None  # crops for self-training (a user's data only)

    @property
    def kind(self) -> str:
        """``synthetic``, ``image-folder`` or ``ecotaxa``."""
        if self.data_dir is not None and self.ecotaxa is not None:
            msg = "give either --data-dir or --ecotaxa, not both"
            raise ValueError(msg)
        return "image-folder" if self.data_dir else "ecotaxa" if self.ecotaxa else "synthetic"


@dataclass(frozen=True, slots=True)
class Splits:
    """The labelled sets by name (``train``, and ``validation`` / ``test`` where there are
    ones), the number of cross-validation folds (0: none) and the card's data summary."""

    sets: dict[str, LabelledSet]
    folds: int
    summary: dict[str, object]

    @property
    def train(self) -> LabelledSet:
        return self.sets["train"]


def load_splits(data: PlanktonData, *, seed: int, progress: Progress) -> Splits:
    """The labelled sets, the folds and the data summary for the card."""
    if data.kind == "synthetic":
        if data.colour == "rgb":
            raise ConfigError("--colour rgb needs your images (--data-dir or --ecotaxa)")
        return _synthetic(data, size=data.input_size or DEFAULT_SIZE, seed=seed, progress=progress)
    return _user(data, seed=seed, progress=progress)


def _synthetic(data: PlanktonData, *, size: int, seed: int, progress: Progress) -> Splits:
    tasks: dict[str, int] = {}

    def advance(label: str, total: int, n: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total, info="")
        progress.advance(tasks[label], n)

    val_n = data.val_per_class or max(20, data.n_per_class // 3)
    splits, seg, model_seg = {}, {}, {}
    for split, n, imbalance in (
        ("train", data.n_per_class, data.imbalance),
        ("validation", val_n, 1.0),
        ("test", val_n, 1.0),
    ):
        splits[split], seg[split] = synthetic_split(
            split,
            n,
            seed=seed,
            size=size,
            segmented_share=data.segmented_share,
            imbalance=imbalance,
            segmentation_model=data.segmentation_model,
            model_segmented_share=data.model_segmented_share,
            advance=advance,
            model_counts=model_seg.setdefault(split, {}),
        )
    summary = {
        "source": "synthetic (seawatch.models.plankton.synthetic_sets.synthetic_split)",
        "train_per_class_mean": data.n_per_class,
        "eval_per_class": val_n,
        "train_imbalance": data.imbalance,
        "split_seeds": {k: seed + v for k, v in SPLIT_SEED_OFFSETS.items()},
        "segmented_share": data.segmented_share,
        "segmented": SEGMENTED | {"counts": seg},
    }
    if data.segmentation_model is not None and data.model_segmented_share > 0:
        summary["model_segmented"] = {
            "model_dir": str(data.segmentation_model),
            "model": check_segmentation_model(data.segmentation_model),
            "share": data.model_segmented_share,
            "hard_share": HARD_SHARE,
            "min_share": MIN_SHARE,
            "seed_offset": MODEL_SEGMENTED_SEED_OFFSET,
            "counts": model_seg,
        }
    summary |= {name: split.summary() for name, split in splits.items()}
    return Splits(splits, 0, summary)


def _user(data: PlanktonData, *, seed: int, progress: Progress) -> Splits:
    if data.kind == "image-folder":
        items = image_folder_items(data.data_dir)
    else:
        items = ecotaxa_items(data.ecotaxa, validated_only=data.validated_only)
    look = look_at([path for path, _ in items])
    size, channels = choose_size(look, data.input_size), choose_channels(look, data.colour)
    total = progress.add_task("reading images", total=len(items), info="")
    kwargs = {"size": size, "channels": channels, "progress": lambda n: progress.advance(total, n)}
    if data.kind == "image-folder":
        everything = load_image_folder(data.data_dir, **kwargs)
    else:
        everything = load_ecotaxa(data.ecotaxa, validated_only=data.validated_only, **kwargs)
    splits, split, folds = _user_splits(everything, data, size=size, seed=seed)
    summary = {
        "source": f"{data.kind}: {data.data_dir or data.ecotaxa}",
        "split": split,
        "input": look.summary()
        | {
            "size": size,
            "channels": channels,
            "size_rule": "forced (--input-size)"
            if data.input_size
            else "nearest of 64/96/128 to the median longer side",
            "colour_rule": f"--colour {data.colour}",
        },
        "unreadable_files": len(everything.skipped),
        "unreadable_examples": everything.skipped[:5],
    }
    summary |= {name: part.summary() for name, part in splits.items()}
    return Splits(splits, folds, summary)


def _user_splits(
    everything: LabelledSet, data: PlanktonData, *, size: int, seed: int
) -> tuple[dict[str, LabelledSet], dict[str, object], int]:
    """Train / validation / test from a user's folders: given ones are used as they are;
    the rest is split off the training folder per class (70/15/15, 85/15 or none). A small
    set without a validation folder is cross-validated: no validation split, and no test
    split unless a folder is given."""
    given = {}
    for name, folder in (("validation", data.val_dir), ("test", data.test_dir)):
        if folder is not None:
            loaded = load_image_folder(folder, size=size, channels=everything.channels)
            given[name] = _same_classes(loaded, everything.class_names, folder)
    counts = list(everything.class_counts().values())
    folds = folds_for(counts, data.folds, has_validation=data.val_dir is not None)
    missing = [] if folds else [n for n in ("validation", "test") if n not in given]
    fractions = {0: (1.0,), 1: (0.85, 0.15), 2: USER_SPLIT}[len(missing)]
    parts = stratified_split(everything.labels, fractions, seed)
    names = ("train", *missing)
    splits = {n: everything.subset(p) for n, p in zip(names, parts, strict=True)} | given
    split = {n: f"{f:.0%} of the training folder" for n, f in zip(names, fractions, strict=True)}
    split |= {
        n: f"given: {folder}"
        for n, folder in (("validation", data.val_dir), ("test", data.test_dir))
        if folder
    }
    if folds:
        split["validation"] = f"{folds}-fold cross-validation of the training folder"
    return splits, split, folds


def _same_classes(loaded: LabelledSet, names: list[str], folder: Path) -> LabelledSet:
    """``loaded`` relabelled to the training folder's class order; an unknown class fails."""
    extra = sorted(set(loaded.class_names) - set(names))
    if extra:
        msg = f"{folder} holds classes the training folder lacks: {extra}; add or remove them"
        raise ConfigError(msg)
    index = np.array([names.index(n) for n in loaded.class_names], np.int64)
    return LabelledSet(loaded.images, index[loaded.labels], names, loaded.source, loaded.sources)


__all__ = ["USER_SPLIT", "PlanktonData", "Splits", "load_splits"]
