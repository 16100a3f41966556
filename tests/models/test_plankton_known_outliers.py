"""`seawatch train plankton-ood --outliers-dir`: a user's known unknowns join the OOD fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("sklearn")

from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import load_card
from seawatch.models.plankton import ood_oe_fit
from seawatch.models.plankton.novel import CALIBRATION_TAXA, novel_set
from seawatch.models.plankton.synthetic_sets import synthetic_split

MODEL = Path(__file__).resolve().parents[2] / "models" / "plankton"
PER_TAXON = 40


def _small_splits(card, progress, labels=None) -> dict[str, np.ndarray]:
    out = {}
    for split, n in (("train", 30), ("validation", 25)):
        subset, _ = synthetic_split(split, n, seed=card.training.seed, size=card.input.size)
        out[split] = subset.images
        if labels is not None:
            labels[split] = np.asarray(subset.labels)
    return out


@pytest.fixture
def small_fit(monkeypatch, tmp_path) -> Path:
    """A copy of the committed artifact and a fit drawn 20-50x smaller (seconds, not minutes)."""
    monkeypatch.setattr(ood_oe_fit, "_splits", _small_splits)
    monkeypatch.setattr(ood_oe_fit, "INSIDE_PER_CLASS", 25)
    monkeypatch.setattr(ood_oe_fit, "SHAPES", 300)
    monkeypatch.setattr(ood_oe_fit, "CORRUPTED", 200)
    monkeypatch.setattr(ood_oe_fit, "CALIBRATION_PER_TAXON", PER_TAXON)
    model = tmp_path / "plankton"
    shutil.copytree(MODEL, model)
    return model


def test_known_outliers_are_learnt_and_recorded(small_fit, tmp_path) -> None:
    # the user's folder: the calibration taxa the fit checks itself on, as PNG files
    crops, _ = novel_set(PER_TAXON, ood_oe_fit.CALIBRATION_SEED, taxa=CALIBRATION_TAXA, size=64)
    folder = tmp_path / "others"
    folder.mkdir()
    for i, crop in enumerate(crops):
        cv2.imwrite(str(folder / f"{i:03d}.png"), crop)
    (folder / "notes.png").write_bytes(b"not an image")
    result = CliRunner().invoke(
        cli, ["train", "plankton-ood", "--model", str(small_fit), "--outliers-dir", str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(crops)} known outliers" in result.output
    assert "notes.png" in result.output  # the unreadable file is named, not dropped silently
    ood = load_card(small_fit).ood
    assert ood["fit"]["outliers"]["known_outliers"] == {"objects": len(crops)}
    assert "--outliers-dir" in ood["command"]
    # learnt as outliers, those taxa are caught far more often (91 % here, 51 % without them)
    assert ood["calibration"]["held_out_taxa"]["unknown"] >= 0.8


def test_outliers_dir_is_refused_for_the_knn_score_and_when_empty(small_fit, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    words = ["train", "plankton-ood", "--model", str(small_fit), "--method", "knn_cosine"]
    knn = CliRunner().invoke(cli, [*words, "--outliers-dir", str(empty)])
    assert knn.exit_code != 0 and "needs --method outlier_exposure" in knn.output
    none = CliRunner().invoke(
        cli, ["train", "plankton-ood", "--model", str(small_fit), "--outliers-dir", str(empty)]
    )
    assert none.exit_code != 0 and "--outliers-dir" in none.output
    assert "no readable image" in none.output
    assert load_card(small_fit).ood == load_card(MODEL).ood  # nothing written
