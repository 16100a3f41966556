"""The self-training student's weight average (EMA of weights and BatchNorm statistics)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

import torch
from torch import nn

from seawatch.models.plankton.selftrain import SelfTrainParams
from seawatch.models.plankton.weight_average import WeightAverage


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_the_average_moves_by_one_minus_decay_towards_each_step() -> None:
    net = _net()
    first = {k: v.clone() for k, v in net.state_dict().items()}
    average = WeightAverage(net, decay=0.9)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()
    net(torch.randn(8, 3))  # moves the running statistics; counts a batch
    after = {k: v.clone() for k, v in net.state_dict().items()}
    average.update(net)
    average.copy_to(net)
    got = net.state_dict()
    for name in ("0.weight", "0.bias", "1.running_mean", "1.running_var"):
        want = 0.9 * first[name] + 0.1 * after[name]
        assert torch.allclose(got[name], want, atol=1e-6), name
    assert not torch.allclose(got["0.weight"], after["0.weight"])  # not the last step's
    assert int(got["1.num_batches_tracked"]) == 1  # integer buffers kept as they are


def test_a_decay_outside_zero_one_is_refused() -> None:
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="decay must be in"):
            WeightAverage(_net(), decay)
    with pytest.raises(ValueError, match="student_average"):
        SelfTrainParams(student_average=1.0)
    assert "EMA 0.999" in SelfTrainParams(student_average=0.999).describe()
