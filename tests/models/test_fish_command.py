"""The fish click commands: train (quick), evaluate and the gallery group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from seawatch.contracts.card import ModelCard, load_card
from seawatch.models.fish.command import evaluate_command, gallery_group, train_command
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.synthetic import make_individual, render_fish


def test_command_module_imports_without_torch() -> None:
    code = "import sys, seawatch.models.fish.command; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.train
def test_train_evaluate_and_manage_the_gallery(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    runner = CliRunner()
    model = tmp_path / "fish"
    result = runner.invoke(train_command, ["--out", str(model), "--quick", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (model / "gallery.npz").is_file()

    result = runner.invoke(evaluate_command, ["--model", str(model)])
    assert result.exit_code == 0, result.output
    assert (model / "evaluation.json").is_file()  # beside the artifact, as the other tasks
    assert not (model / "evaluation").exists()

    # the threshold per gallery size: written by training, and again without retraining
    card = load_card(model)
    table = card.thresholds_by_gallery_size["match_similarity"]
    gallery_size = len(Gallery.load(model / "gallery.npz"))
    assert dict(table)[gallery_size] == card.thresholds["match_similarity"]
    stripped = card.model_dump(mode="json") | {"thresholds_by_gallery_size": None}
    ModelCard.model_validate(stripped).write(model)
    assert load_card(model).thresholds_by_gallery_size is None
    result = runner.invoke(
        evaluate_command, ["--model", str(model), "--out", str(tmp_path), "--recalibrate"]
    )
    assert result.exit_code == 0, result.output
    again = load_card(model)
    assert again.thresholds_by_gallery_size["match_similarity"] == table
    assert again.release == card.release  # weights unchanged

    result = runner.invoke(gallery_group, ["list", "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "zf-0-0000" in result.output

    images = []
    rng = np.random.default_rng(0)
    for i in range(2):
        images.append(tmp_path / f"crop{i}.png")
        cv2.imwrite(str(images[-1]), render_fish(make_individual(99, 0), rng))
    own = tmp_path / "mine.npz"
    args = ["enrol", "nemo", *map(str, images), "--model", str(model), "--gallery", str(own)]
    result = runner.invoke(gallery_group, args)
    assert result.exit_code == 0, result.output
    assert Gallery.load(own).entry("nemo").n_embeddings == 2

    result = runner.invoke(
        gallery_group, ["remove", "nemo", "--model", str(model), "--gallery", str(own)]
    )
    assert result.exit_code == 0, result.output
    assert "nemo" not in Gallery.load(own)

    before = len(Gallery.load(model / "gallery.npz"))
    result = runner.invoke(gallery_group, ["remove", "zf-0-0000", "--model", str(model)])
    assert result.exit_code == 0 and len(Gallery.load(model / "gallery.npz")) == before - 1

    bad = runner.invoke(
        gallery_group, ["enrol", "x", str(tmp_path / "none.png"), "--model", str(model)]
    )
    assert bad.exit_code != 0 and "cannot read" in bad.output
    bad = runner.invoke(train_command, ["--out", str(model), "--far", "2"])
    assert bad.exit_code != 0 and "--far" in bad.output
