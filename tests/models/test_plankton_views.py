"""Test-time dihedral views (issue 24): a graph that averages a crop's turns and mirror
images gives the same answer however the crop lies, exports to ONNX with the same outputs,
and ``--views auto`` keeps more views only when validation says they pay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

import torch

from seawatch.contracts.errors import ConfigError
from seawatch.contracts.preprocess import prepare_roi
from seawatch.models.plankton.datasets import LabelledSet
from seawatch.models.plankton.export import export_onnx, ort_session
from seawatch.models.plankton.finetune import macro_f1, predict
from seawatch.models.plankton.network import PlanktonNet, WithFeatures, dihedral_views
from seawatch.models.plankton.synthetic import TAXA, render_roi
from seawatch.models.plankton.views_choice import AUTO_MIN_GAIN, choose_views, parse_views


def _net(seed: int = 0, classes: int = 5) -> PlanktonNet:
    torch.manual_seed(seed)
    net = PlanktonNet(classes).eval()
    for module in net.modules():  # BatchNorm statistics unlike the identity, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return net


def _crops(n: int, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (n, 1, 64, 64))).float()


def _dihedral_group(x: torch.Tensor) -> list[torch.Tensor]:
    turns = [torch.rot90(x, k, (2, 3)) for k in range(4)]
    return turns + [t.flip(2) for t in turns]


def test_eight_views_answer_the_same_for_every_turn_and_mirror_image():
    net, x = _net(), _crops(4)
    graph = WithFeatures(net, 8).eval()
    with torch.no_grad():
        want = graph(x)
        for moved in _dihedral_group(x)[1:]:
            got = graph(moved)
            assert all(float((a - b).abs().max()) < 1e-5 for a, b in zip(want, got, strict=True))
        single = WithFeatures(net, 1)(x)
        turned = WithFeatures(net, 1)(torch.rot90(x, 1, (2, 3)))
        # one view is not invariant, so the check above could fail
        assert float((single[0] - turned[0]).abs().max()) > 1e-3
        # views 1 is the plain network; the probabilities are the head of the mean features
        assert float((single[0] - net(x)).abs().max()) < 1e-6
        mean_logits = net.view_logits(x, 8) / net.temperature
        assert float((torch.softmax(mean_logits, 1) - want[0]).abs().max()) < 1e-6
        four = WithFeatures(net, 4)
        assert float((four(x)[0] - four(torch.rot90(x, 3, (2, 3)))[0]).abs().max()) < 1e-5
    stacked = dihedral_views(x, 4).reshape(4, *x.shape)
    for k in range(4):  # written as transposes and flips, the turns are torch's rot90
        assert torch.equal(stacked[k], torch.rot90(x, k, (2, 3)))
    with pytest.raises(ValueError, match="views must be one of"):
        WithFeatures(net, 3)


def test_a_views_graph_exports_with_a_dynamic_batch_and_matches_torch(tmp_path):
    net, x = _net(), _crops(5)
    path = export_onnx(net, tmp_path / "model.onnx", size=64, views=8)
    session = ort_session(path)
    got = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = WithFeatures(net, 8)(x)
    assert [g.shape for g in got] == [(5, 5), (5, 160), (5, 192)]
    assert max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True)) < 1e-4
    mirrored = session.run(["probs"], {"image": x.flip(3).numpy()})[0]
    assert float(np.abs(mirrored - got[0]).max()) < 1e-5


def test_auto_keeps_more_views_only_when_validation_gains_enough():
    net = _net(2, classes=3)
    rng = np.random.default_rng(3)
    images = np.stack([prepare_roi(render_roi(TAXA[i % len(TAXA)], rng), 64) for i in range(60)])
    with torch.no_grad():  # a head centred on these crops (a random one picks one class)
        features = net.features(torch.from_numpy(images[:, None]).float())
        net.head[2].weight.mul_(40.0)
        net.head[2].bias.copy_(-net.head[2](features.mean(0)) + net.head[2].bias)
    labels = predict(net, images, views=8)  # labels the 8-view model gets right by design
    held = LabelledSet(images, labels, ["a", "b", "c"], np.zeros(60, np.int8))
    views, record, logits = choose_views(net, held, "auto", "cpu")
    scores = {v: macro_f1(labels, predict(net, images, views=v), 3) for v in (1, 4, 8)}
    assert record["validation_macro_f1"] == {str(v): round(f, 4) for v, f in scores.items()}
    assert scores[8] == 1.0 and scores[1] < 1.0 - AUTO_MIN_GAIN  # the set makes 8 worth it
    assert views == max((4, 8), key=lambda v: (scores[v], -v)) and record["chosen"] == views
    assert np.array_equal(logits.argmax(1), predict(net, images, views=views))
    plain = dataclasses.replace(held, labels=predict(net, images))
    one, record_one, _ = choose_views(net, plain, "auto", "cpu")
    assert one == 1 and record_one["validation_macro_f1"]["1"] == 1.0  # nothing to gain
    asked, _, _ = choose_views(net, held, 4, "cpu")
    assert asked == 4
    assert parse_views("8") == 8 and parse_views("auto") == "auto"
    with pytest.raises(ConfigError, match="one of 1, 4, 8, auto"):
        parse_views("2")
