"""Self-training options: class-adaptive thresholds (``--self-training-min-threshold``) and
several rounds (``--self-training-rounds``), the best round kept on validation, through the
training command on a user's folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

import torch
from click.testing import CliRunner

from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.selftrain import (
    SelfTrained,
    SelfTrainParams,
    class_thresholds,
    keep_best,
    pick_pseudo_labels,
)
from seawatch.models.plankton.shifted import shifted_set

pytestmark = pytest.mark.train
NAMES = ("bubble", "fiber", "centric_diatom")


def _probabilities() -> np.ndarray:
    """Class 0 passes 4 crops at 0.8, class 1 one, class 2 none (two at 0.62-0.7)."""
    rows = [[0.95, 0.03, 0.02]] * 4 + [[0.05, 0.9, 0.05], [0.2, 0.65, 0.15]]
    rows += [[0.15, 0.15, 0.7], [0.2, 0.18, 0.62], [0.3, 0.2, 0.5]]
    return np.array(rows)


def test_class_adaptive_thresholds_lower_the_bar_for_starved_classes():
    probs = _probabilities()
    np.testing.assert_allclose(class_thresholds(probs, 0.8), [0.8, 0.8, 0.8])
    thresholds = class_thresholds(probs, 0.8, min_threshold=0.6)
    np.testing.assert_allclose(thresholds, [0.8, 0.6, 0.6])  # 0.8 x 1/4 and 0 x 0.8: floor
    chosen, labels = pick_pseudo_labels(probs, thresholds, cap=10)
    assert chosen.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # not the 0.5 one
    assert np.bincount(labels).tolist() == [4, 2, 2]
    fixed, _ = pick_pseudo_labels(probs, 0.8, cap=10)
    assert fixed.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="min_threshold"):
        SelfTrainParams(min_threshold=0.9)
    assert "class-adaptive" in SelfTrainParams(min_threshold=0.6).describe()


def test_the_best_round_on_validation_is_kept():
    torch.manual_seed(0)
    teacher, first, second = PlanktonNet(3), PlanktonNet(3), PlanktonNet(3)
    rounds = [
        {"pseudo_labels": 10, "validation_macro_f1": 0.70},
        {"pseudo_labels": 12, "validation_macro_f1": 0.65},
    ]
    done = SelfTrained(second, rounds, [first, second])
    params = SelfTrainParams(rounds=2)
    kept, summary = keep_best(teacher, 0.60, done, params, 30)
    assert kept is first and summary["kept"] == "student of round 1"
    assert "2 round(s)" in str(summary["method"]) and len(summary["rounds"]) == 2
    kept, summary = keep_best(teacher, 0.72, done, params, 30)
    assert kept is teacher and summary["kept"] == "teacher"
    rounds[1]["validation_macro_f1"] = 0.75
    kept, summary = keep_best(teacher, 0.72, done, params, 30)
    assert kept is second and summary["kept"] == "student of round 2"
    kept, summary = keep_best(teacher, 0.60, done, params, 30, rounds=1)  # round 1 alone
    assert kept is first and summary["kept"] == "student" and len(summary["rounds"]) == 1


def _folder(root: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    for i, image in enumerate(images):
        sub = root / (NAMES[labels[i]] if labels is not None else "cruise")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i}.png"), image)
    return root


def test_train_plankton_runs_two_class_adaptive_rounds_from_the_command_line(tmp_path):
    from seawatch.cli import cli as main

    train = _folder(tmp_path / "train", *shifted_set(4, 51, taxa=NAMES))
    val = _folder(tmp_path / "val", *shifted_set(3, 52, taxa=NAMES))
    crops = _folder(tmp_path / "crops", shifted_set(5, 53, taxa=NAMES)[0], None)
    common = ["train", "plankton", "--data-dir", str(train), "--val-dir", str(val)]
    common += ["--test-dir", str(val), "--epochs", "2", "--batch-size", "8"]
    common += ["--finetune", "full", "--pretrained", "none"]
    runner = CliRunner()
    two_rounds = ["--self-training-rounds", "2"]
    refused = runner.invoke(main, [*common, "--out", str(tmp_path / "x"), *two_rounds])
    assert refused.exit_code != 0 and "--self-training-rounds" in refused.output
    with_crops = [*common, "--unlabelled-dir", str(crops)]
    too_high = ["--self-training-min-threshold", "0.9"]
    refused = runner.invoke(main, [*with_crops, "--out", str(tmp_path / "y"), *too_high])
    assert refused.exit_code != 0 and "--self-training-min-threshold" in refused.output
    out = tmp_path / "out"
    adaptive = ["--self-training-min-threshold", "0.5"]
    done = runner.invoke(main, [*with_crops, "--out", str(out), *two_rounds, *adaptive])
    assert done.exit_code == 0, done.output
    card = json.loads((out / "card.json").read_text())
    tuning = card["metrics"]["fine_tuning"]["self_training"]
    assert len(tuning["rounds"]) == 2 and "class-adaptive" in tuning["method"]
    assert all(len(r["thresholds"]) == 3 for r in tuning["rounds"])
    assert tuning["kept"] in ("teacher", "student of round 1", "student of round 2")
