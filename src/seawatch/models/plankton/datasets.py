"""Labelled plankton images for training and evaluation: ImageFolder trees, EcoTaxa exports.

Every image goes through the serving path's own preprocessing (``prepare_crop``: ``to_gray8``
then ``prepare_roi`` for a gray model, ``to_colour8`` then ``prepare_roi_colour`` for a colour
one), so a model trained here sees exactly what the daemon will feed it. numpy and
OpenCV only (no torch): ``seawatch evaluate`` uses these loaders with ONNX Runtime.

- **ImageFolder**: ``ROOT/<class name>/<image>``, one folder per class (torchvision's layout).
- **EcoTaxa export**: a TSV whose first row names the columns and whose second row gives each
  column's type, ``[t]`` (text) or ``[f]`` (float); the label is
  ``object_annotation_category`` and the image ``img_file_name``, relative to the TSV's folder.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.image_files import IMAGE_SUFFIXES, read_image
from seawatch.contracts.preprocess import prepare_crop

ECOTAXA_LABEL, ECOTAXA_IMAGE = "object_annotation_category", "img_file_name"
ECOTAXA_STATUS = "object_annotation_status"


@dataclass(slots=True)
class LabelledSet:
    """Prepared crops (uint8 N x S x S, or N x S x S x 3 for colour), integer labels into
    ``class_names``, and provenance.

    ``source`` holds a code per sample into ``sources`` (e.g. ``roi`` / ``segmented`` for the
    synthetic generator, ``file`` for user data); ``skipped`` lists files that could not be
    read, with the reason, so nothing is dropped silently.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: np.ndarray
    sources: tuple[str, ...] = ("file",)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        """1 (gray crops) or 3 (colour crops)."""
        return 3 if self.images.ndim == 4 else 1

    def subset(self, index: np.ndarray) -> LabelledSet:
        """The samples at ``index``, same classes and sources."""
        return LabelledSet(
            self.images[index],
            self.labels[index],
            self.class_names,
            self.source[index],
            self.sources,
        )

    def class_counts(self) -> dict[str, int]:
        """Samples per class name."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def summary(self) -> dict[str, object]:
        """Sizes per class and per source, for the model card."""
        by_source = np.bincount(self.source, minlength=len(self.sources))
        return {
            "total": len(self),
            "by_source": {n: int(c) for n, c in zip(self.sources, by_source, strict=True)},
            "by_class": self.class_counts(),
            "skipped": len(self.skipped),
        }


def planes(images: np.ndarray) -> np.ndarray:
    """Prepared crops as uint8 N x C x S x S (a view for gray, a copy for colour)."""
    if images.ndim == 3:
        return images[:, None]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def _load(
    items: Sequence[tuple[Path, str]],
    size: int,
    origin: str,
    progress: Callable[[int], object] | None,
    channels: int = 1,
) -> LabelledSet:
    class_names = sorted({label for _, label in items})
    index = {name: i for i, name in enumerate(class_names)}
    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[str] = []
    for path, label in items:
        try:
            images.append(prepare_crop(read_image(path), size, channels))
            labels.append(index[label])
        except (ValueError, OSError) as exc:
            skipped.append(f"{path}: {exc}")
        if progress is not None:
            progress(1)
    if not images:
        msg = f"{origin}: none of the {len(items)} images could be read ({skipped[:3]})"
        raise ConfigError(msg)
    found = sorted({class_names[i] for i in labels})
    if len(found) < 2:
        msg = f"{origin}: a classifier needs at least 2 classes with readable images, got {found}"
        raise ConfigError(msg)
    y = np.array(labels, np.int64)
    return LabelledSet(
        np.stack(images), y, class_names, np.zeros(len(y), np.int64), ("file",), skipped
    )


def image_folder_items(root: Path) -> list[tuple[Path, str]]:
    """``(image path, class name)`` for an ImageFolder tree; ConfigError when it is not one."""
    root = Path(root)
    if not root.is_dir():
        msg = f"--data-dir {root}: not a directory; give ROOT with one sub-folder per class"
        raise ConfigError(msg)
    items = [
        (path, folder.name)
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if not items:
        msg = (
            f"--data-dir {root}: no images found; expected ROOT/<class>/<image> with "
            f"suffixes {sorted(IMAGE_SUFFIXES)}"
        )
        raise ConfigError(msg)
    return items


def load_image_folder(
    root: Path,
    *,
    size: int,
    channels: int = 1,
    progress: Callable[[int], object] | None = None,
) -> LabelledSet:
    """Load an ImageFolder tree as prepared crops (gray, or colour for ``channels`` 3);
    class names are the folder names, sorted."""
    return _load(image_folder_items(root), size, f"--data-dir {root}", progress, channels)


def ecotaxa_items(tsv: Path, *, validated_only: bool = False) -> list[tuple[Path, str]]:
    """``(image path, category)`` rows of an EcoTaxa export TSV, its type row checked."""
    tsv = Path(tsv)
    if not tsv.is_file():
        msg = f"--ecotaxa {tsv}: no such file; give the .tsv of an EcoTaxa export"
        raise ConfigError(msg)
    with tsv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    if len(rows) < 2:
        msg = f"--ecotaxa {tsv}: needs a header row and a [t]/[f] type row"
        raise ConfigError(msg)
    header, types = rows[0], rows[1]
    bad = [f"{h}={t!r}" for h, t in zip(header, types, strict=False) if t not in ("[t]", "[f]")]
    if len(types) != len(header) or bad:
        msg = (
            f"--ecotaxa {tsv}: row 2 must give [t] or [f] for each of the {len(header)} columns "
            f"(EcoTaxa's type row); got {bad[:3] or len(types)}"
        )
        raise ConfigError(msg)
    missing = [c for c in (ECOTAXA_IMAGE, ECOTAXA_LABEL) if c not in header]
    if missing:
        msg = f"--ecotaxa {tsv}: missing column(s) {missing}; found {header[:8]}..."
        raise ConfigError(msg)
    col = {name: i for i, name in enumerate(header)}
    items: list[tuple[Path, str]] = []
    for number, row in enumerate(rows[2:], start=3):
        if not any(row):
            continue
        if len(row) != len(header):
            msg = f"--ecotaxa {tsv}: line {number} has {len(row)} fields, header {len(header)}"
            raise ConfigError(msg)
        label = row[col[ECOTAXA_LABEL]].strip()
        status = row[col[ECOTAXA_STATUS]].strip() if ECOTAXA_STATUS in col else "validated"
        if not label or (validated_only and status != "validated"):
            continue
        items.append((tsv.parent / row[col[ECOTAXA_IMAGE]], label))
    if not items:
        msg = f"--ecotaxa {tsv}: no labelled rows (object_annotation_category is empty)"
        raise ConfigError(msg)
    return items


def load_ecotaxa(
    tsv: Path,
    *,
    size: int,
    channels: int = 1,
    validated_only: bool = False,
    progress: Callable[[int], object] | None = None,
) -> LabelledSet:
    """Load an EcoTaxa export (TSV + images) as prepared crops labelled by category."""
    items = ecotaxa_items(tsv, validated_only=validated_only)
    return _load(items, size, f"--ecotaxa {tsv}", progress, channels)


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Index arrays splitting ``labels`` per class by ``fractions`` (the last takes the rest).

    Every class with at least as many samples as parts gets at least one sample in each part,
    so validation and test see every class they can.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n = len(members)
        cuts = np.floor(np.cumsum(fractions[:-1]) * n).astype(int)
        if n >= len(fractions):
            cuts = np.maximum(cuts, np.arange(1, len(fractions)))
            cuts = np.minimum(cuts, n - len(fractions) + np.arange(1, len(fractions)))
        for part, chunk in zip(parts, np.split(members, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


__all__ = [
    "ECOTAXA_IMAGE",
    "ECOTAXA_LABEL",
    "IMAGE_SUFFIXES",
    "LabelledSet",
    "ecotaxa_items",
    "image_folder_items",
    "load_ecotaxa",
    "load_image_folder",
    "planes",
    "read_image",
    "stratified_split",
]
