"""A user's labelled fish: one sub-folder per individual, and the split by individual.

``DIR/<individual>/<image>``: every image in a sub-folder (any depth) is a view of that fish.
Re-identification must work on fish never seen in training, so the held-out data are whole
*individuals*, never other images of training fish (:func:`split_individuals`): a share of
them is enrolled in an evaluation gallery (known), a share only sets the open-set threshold
(calibration impostors) and a share is never enrolled (the new fish of the evaluation).
numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.image_files import IMAGE_SUFFIXES, read_image
from seawatch.models.fish.preprocess import fish_input8

MIN_INDIVIDUALS = 8  # 2 to train on, 2 known, 2 calibration, 2 new
MIN_VIEWS = 2  # a known individual needs one view to enrol and one to query
HELD_OUT_GROUPS = ("known", "calibration", "new")


@dataclass(frozen=True, slots=True)
class FishFolders:
    """Prepared views (N x 3 x H x W uint8 RGB), their individual (index into ``names``)."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    skipped: list[str]

    def of(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The images and labels of the individuals ``indices``."""
        chosen = np.isin(self.labels, indices)
        return self.images[chosen], self.labels[chosen]


def read_folders(
    root: Path, height: int, width: int, *, progress: Callable[[int], object] | None = None
) -> FishFolders:
    """Read ``root/<individual>/...`` at the model's input size; ConfigError on a bad tree.

    Unreadable files are named in ``skipped``, not dropped silently; individuals with fewer
    than :data:`MIN_VIEWS` readable views are skipped too (they cannot be evaluated).
    """
    root = Path(root)
    if not root.is_dir():
        msg = f"--data-dir {root}: not a directory; give DIR with one sub-folder per individual"
        raise ConfigError(msg)
    images, labels, names, skipped = [], [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        views = []
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            try:
                views.append(fish_input8(read_image(path), height, width).transpose(2, 0, 1))
            except ValueError as exc:
                skipped.append(f"{path}: {exc}")
        if len(views) < MIN_VIEWS:
            skipped.append(f"{folder}: {len(views)} readable views (needs {MIN_VIEWS})")
            continue
        images += views
        labels += [len(names)] * len(views)
        names.append(folder.name)
        if progress is not None:
            progress(len(views))
    if len(names) < MIN_INDIVIDUALS:
        msg = (
            f"--data-dir {root}: {len(names)} individuals with at least {MIN_VIEWS} views; "
            f"fine-tuning needs {MIN_INDIVIDUALS} (some to train on, some held out to show it "
            "generalises to fish it never saw), one sub-folder of images per individual"
        )
        raise ConfigError(msg)
    return FishFolders(np.stack(images), np.array(labels, np.int64), names, skipped)


def split_individuals(n: int, held_out: float, seed: int) -> dict[str, list[int]]:
    """Individuals ``0..n-1`` drawn (by ``seed``) into train and the three held-out groups.

    ``held_out`` of them (at least 2 per held-out group) are held out, in thirds; at least 2
    are left to train on.
    """
    if not 0.0 < held_out < 1.0:
        msg = f"--held-out must be between 0 and 1 (a share of the individuals), got {held_out}"
        raise ConfigError(msg)
    per_group = max(2, round(n * held_out / len(HELD_OUT_GROUPS)))
    if n - per_group * len(HELD_OUT_GROUPS) < 2:
        msg = (
            f"{n} individuals cannot hold out {len(HELD_OUT_GROUPS)} groups of {per_group} and "
            f"keep 2 to train on; add individuals or lower --held-out ({held_out})"
        )
        raise ConfigError(msg)
    order = np.random.default_rng([seed, 24]).permutation(n).tolist()
    groups = {
        g: sorted(order[k * per_group : (k + 1) * per_group]) for k, g in enumerate(HELD_OUT_GROUPS)
    }
    return {"train": sorted(order[per_group * len(HELD_OUT_GROUPS) :])} | groups


__all__ = [
    "HELD_OUT_GROUPS",
    "MIN_INDIVIDUALS",
    "MIN_VIEWS",
    "FishFolders",
    "read_folders",
    "split_individuals",
]
