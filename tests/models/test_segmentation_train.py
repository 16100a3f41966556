"""``seawatch train segmentation`` end to end (a tiny plan), and the parts of the recipe
that decide what the students learn: the quality filter and distillation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.segmentation.fit import FitSettings, segnet_loss
from seawatch.models.segmentation.selftrain import ROWS, PseudoSet, pseudo_targets


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "segmentation"
    result = CliRunner().invoke(cli, ["train", "segmentation", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_artifact_holds_the_student_the_quality_network_and_every_row(artifact):
    card = load_card(artifact)
    assert card.task == "segmentation" and card.files["quality"] == "quality.onnx"
    assert card.training.command.startswith("seawatch train segmentation")
    assert set(card.metrics["rows"]) == {"threshold", *dict(ROWS)}
    assert {"spearman_teacher", "spearman_student"} <= set(card.metrics["quality"])
    assert card.training.data["pool"]["seed"] == 7_100_200  # development seeds only
    assert (artifact / "ablation.png").stat().st_size > 1000
    for key in [*dict(ROWS), "teacher"]:
        assert (artifact / "ablation" / f"{key}.onnx").is_file()
    seg = OnnxRuntimeBackend(artifact / ONNX_FILE, threads=1)
    maps = seg.run(np.random.default_rng(0).uniform(0, 60, (2, 1, 96, 160)).astype(np.float32))
    assert maps.shape == (2, 2, 96, 160) and maps.min() >= 0 and maps.max() <= 1
    quality = OnnxRuntimeBackend(artifact / "quality.onnx", threads=1)
    iou = quality.run(np.zeros((3, 6, 32, 32), np.float32))
    assert iou.reshape(-1).shape == (3,)
    json.dumps(card.metrics)  # plain data


def test_the_quality_filter_ignores_the_region_of_rejected_pseudo_instances():
    labels = np.zeros((32, 32), np.int32)
    labels[2:10, 2:10] = 1
    labels[20:30, 20:30] = 2
    pseudo = PseudoSet(
        maps=np.zeros((1, 2, 32, 32), np.float32),
        labels=[labels],
        predicted=[np.array([0.9, 0.2])],
        true=[np.zeros(2)],
    )
    fg, centre, weight, kept, dropped = pseudo_targets(pseudo, 0.5)
    assert centre[0, 5, 5] > 0.5 and centre[0, 25, 25] == 0
    assert (kept, dropped) == (1, 1)
    assert fg[0, 5, 5] == 1 and fg[0, 25, 25] == 0  # the rejected one is not foreground...
    assert weight[0, 25, 25] == 0 and weight[0, 18, 25] == 0  # ...nor background: ignored
    assert weight[0, 5, 5] == 1 and weight[0, 15, 2] == 1
    fg, _, weight, kept, dropped = pseudo_targets(pseudo, None)  # no filter: all kept
    assert (kept, dropped) == (2, 0) and fg[0, 25, 25] == 1 and weight.min() == 1


def test_distillation_pulls_the_student_towards_the_teacher_soft_maps():
    logits = torch.zeros(2, 2, 8, 8)
    fg = torch.zeros(2, 8, 8)
    weight = torch.ones(2, 8, 8)
    soft = torch.full((2, 2, 8, 8), 0.9)
    distil = torch.tensor([True, False])
    plain = segnet_loss(logits, fg, fg, weight, soft, distil, FitSettings(kd_weight=0.0))
    with_kd = segnet_loss(logits, fg, fg, weight, soft, distil, FitSettings(kd_weight=1.0))
    assert with_kd > plain
    agree = torch.logit(soft)  # a student that says what the teacher says
    kd_only = segnet_loss(agree, fg, fg, weight * 0, soft, distil, FitSettings(kd_weight=1.0))
    worse = segnet_loss(-agree, fg, fg, weight * 0, soft, distil, FitSettings(kd_weight=1.0))
    assert kd_only < worse
