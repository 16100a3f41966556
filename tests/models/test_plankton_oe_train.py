"""Train-time outlier exposure (seawatch.models.plankton.oe_train): the loss, the frozen part,
and that fine-tuning with drawn outliers makes the classifier less sure of new outliers."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.oe_artifact import build_oe_artifact
from seawatch.models.plankton.oe_train import OeParams, finetune_oe, oe_loss
from seawatch.models.plankton.outliers import outlier_set
from seawatch.models.plankton.synthetic import make_dataset

SIZE = 32
TAXA = ["copepod", "diatom_chain", "bubble"]


def test_oe_loss_is_least_for_a_uniform_softmax() -> None:
    uniform = oe_loss(torch.zeros(4, 10))
    assert float(uniform) == pytest.approx(math.log(10), abs=1e-6)
    confident = torch.zeros(4, 10)
    confident[:, 0] = 8.0
    assert float(oe_loss(confident)) > float(uniform) + 3.0
    assert float(oe_loss(torch.zeros(0, 10))) == 0.0


@pytest.mark.parametrize(
    ("field", "value"), [("train_from", 5), ("steps", 0), ("weight", -1.0), ("lr", 0.0)]
)
def test_bad_parameters_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        OeParams(**{field: value})


def test_outliers_are_needed_when_weighted() -> None:
    with pytest.raises(ValueError, match="needs outliers"):
        OeParams(shapes=0, corrupted=0)


@pytest.fixture(scope="module")
def tiny() -> tuple[PlanktonNet, np.ndarray, np.ndarray]:
    """A small network trained on three taxa (the same loop with weight 0, all layers)."""
    torch.manual_seed(0)
    net = PlanktonNet(len(TAXA), widths=(8, 16, 16, 16), mean=0.75, std=0.2)
    images, labels = make_dataset(16, np.random.default_rng(7_100_700), size=SIZE, taxa=TAXA)
    labels = np.unique(labels, return_inverse=True)[1]  # TAXA indices -> 0..2
    params = OeParams(steps=100, batch=16, weight=0.0, lr=1e-2, train_from=0)
    finetune_oe(net, images, labels, images[:0], params)
    return net, images, labels


def _top1(net: PlanktonNet, images: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return torch.softmax(net.logits(torch.from_numpy(images[:, None]).float()), 1).numpy()


def test_exposure_makes_new_outliers_less_certain_and_keeps_the_frozen_part(tiny) -> None:
    """The same fine-tuning with the OE loss (weight 1) and without it (weight 0): with it,
    outliers of a seed it never saw get a flatter softmax while the training taxa stay
    right, and the stem and the stages before ``train_from`` are bit-for-bit unchanged."""
    base, images, labels = tiny
    seen = outlier_set(64, 7_100_701, size=SIZE)
    unseen = outlier_set(48, 7_100_702, size=SIZE)
    top1, accuracy = {}, {}
    for weight in (0.0, 1.0):
        net = copy.deepcopy(base)
        frozen = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("stem")}
        frozen |= {k: v.clone() for k, v in net.state_dict().items() if k.startswith("stages.")}
        frozen = {k: v for k, v in frozen.items() if not k.startswith(("stages.2", "stages.3"))}
        params = OeParams(steps=40, batch=16, weight=weight, lr=3e-3, train_from=2)
        history = finetune_oe(net, images, labels, seen, params)
        assert history[-1]["step"] == 40
        after = net.state_dict()
        assert all(torch.equal(after[k], v) for k, v in frozen.items())
        assert not torch.equal(after["head.2.weight"], base.state_dict()["head.2.weight"])
        top1[weight] = float(_top1(net, unseen).max(1).mean())
        accuracy[weight] = float((_top1(net, images).argmax(1) == labels).mean())
    assert top1[1.0] < top1[0.0] - 0.1, top1
    assert accuracy[1.0] >= 0.9, accuracy


def test_labels_must_match_images(tiny) -> None:
    net, images, labels = tiny
    with pytest.raises(ValueError, match="labelled images"):
        finetune_oe(net, images, labels[:-1], images[:4], OeParams(steps=1))


def test_the_artifact_is_never_written_over_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="new folder"):
        build_oe_artifact(tmp_path, tmp_path, OeParams(), command="test")


def test_the_command_refuses_bad_parameters_and_its_own_source(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from seawatch.cli import cli

    runner = CliRunner()
    bad = runner.invoke(
        cli, ["train", "plankton-oe", "--model", str(tmp_path), "--out", "x", "--weight", "-1"]
    )
    assert bad.exit_code != 0 and "weight" in bad.output
    same = runner.invoke(
        cli, ["train", "plankton-oe", "--model", str(tmp_path), "--out", str(tmp_path)]
    )
    assert same.exit_code != 0 and "new folder" in same.output
