"""Labelled data sources: ImageFolder trees, EcoTaxa exports, stratified splits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.datasets import (
    ecotaxa_items,
    load_ecotaxa,
    load_image_folder,
    stratified_split,
)
from seawatch.models.plankton.synthetic import render_roi
from seawatch.models.plankton.synthetic_sets import long_tail_counts


def _write_roi(path: Path, taxon: str, seed: int, *, colour: bool = False) -> None:
    roi = render_roi(taxon, np.random.default_rng(seed))
    if colour:
        roi = cv2.cvtColor(roi, cv2.COLOR_GRAY2BGR)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), roi)


def test_image_folder_reads_one_class_per_folder_and_reports_unreadable_files(tmp_path):
    for i in range(3):
        _write_roi(tmp_path / "copepod" / f"c{i}.png", "copepod", i)
        _write_roi(tmp_path / "diatom_chain" / f"d{i}.jpg", "diatom_chain", 10 + i, colour=True)
    (tmp_path / "copepod" / "broken.png").write_bytes(b"not an image")
    (tmp_path / "copepod" / "notes.txt").write_text("ignored: not an image suffix")
    data = load_image_folder(tmp_path, size=32)
    assert data.class_names == ["copepod", "diatom_chain"]
    assert data.images.shape == (6, 32, 32) and data.images.dtype == np.uint8
    assert data.class_counts() == {"copepod": 3, "diatom_chain": 3}
    assert len(data.skipped) == 1 and "broken.png" in data.skipped[0]


def test_image_folder_errors_name_the_option_and_the_layout(tmp_path):
    with pytest.raises(ConfigError, match=r"--data-dir .*not a directory"):
        load_image_folder(tmp_path / "missing", size=32)
    (tmp_path / "only").mkdir()
    with pytest.raises(ConfigError, match=r"ROOT/<class>/<image>"):
        load_image_folder(tmp_path, size=32)


def _ecotaxa(tmp_path: Path, rows: list[list[str]], types: list[str] | None = None) -> Path:
    header = ["object_id", "img_file_name", "object_annotation_category", "object_area"]
    types = types or ["[t]", "[t]", "[t]", "[f]"]
    lines = ["\t".join(header), "\t".join(types), *("\t".join(r) for r in rows)]
    tsv = tmp_path / "ecotaxa_export.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return tsv


def test_ecotaxa_export_is_loaded_by_category_with_images_beside_the_tsv(tmp_path):
    rows = []
    for i, category in enumerate(["Copepoda", "Copepoda", "detritus", "detritus", ""]):
        name = f"imgs/o{i}.png"
        _write_roi(tmp_path / name, "copepod" if category == "Copepoda" else "detritus", i)
        rows.append([f"o{i}", name, category, "12.5"])
    data = load_ecotaxa(_ecotaxa(tmp_path, rows), size=40)
    assert data.class_names == ["Copepoda", "detritus"]
    assert len(data) == 4  # the unlabelled row is not training data
    assert data.images.shape[1:] == (40, 40)


def test_ecotaxa_type_row_and_columns_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\[t\] or \[f\]"):
        ecotaxa_items(_ecotaxa(tmp_path, [["1", "a.png", "x", "1"]], ["[t]", "[t]", "text", "[f]"]))
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("object_id\timg_file_name\n[t]\t[t]\n1\ta.png\n")
    with pytest.raises(ConfigError, match="object_annotation_category"):
        ecotaxa_items(tsv)


def test_stratified_split_keeps_every_class_in_every_part():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 3)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=1)
    joined = np.sort(np.concatenate(parts))
    np.testing.assert_array_equal(joined, np.arange(len(labels)))  # a partition
    for part in parts:
        assert set(labels[part]) == {0, 1, 2}
    assert abs(len(parts[0]) - 0.7 * len(labels)) <= 4


def test_long_tail_counts_follow_natural_frequency_with_the_given_ratio():
    counts = long_tail_counts(100, 4.0)
    assert max(counts.values()) / min(counts.values()) == pytest.approx(4.0, rel=0.05)
    assert counts["detritus"] == max(counts.values())
    assert sum(counts.values()) == pytest.approx(1000, abs=10)
    assert len(set(long_tail_counts(50, 1.0).values())) == 1
