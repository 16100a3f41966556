"""The MKD losses and the exported detector module (torch)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seawatch.models.otolith.network import (  # noqa: E402
    FeatureNet,
    OtolithMKD,
    Student,
    direction_map,
    discrepancy_maps,
    mkd_loss,
    reduce_scores,
    value_map,
)
from seawatch.models.otolith.train import QUICK, train_otolith  # noqa: E402

pytestmark = pytest.mark.train
WIDTHS = (8, 8, 16, 16)


def _features(seed: int, shapes=((2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) for s in shapes]


def test_losses_are_zero_when_the_student_matches_the_teacher() -> None:
    t = _features(0)
    assert float(mkd_loss(t, [f.clone() for f in t], 1.0)) == pytest.approx(0.0, abs=1e-6)
    for m in discrepancy_maps(t, t, 1.0):
        assert float(m.abs().max()) < 1e-5


def test_direction_loss_ignores_scale_and_value_loss_does_not() -> None:
    t, s = _features(0), _features(1)
    for a, b in zip(t, s, strict=True):
        torch.testing.assert_close(direction_map(a, b), direction_map(a, 3.0 * b))
        assert float(direction_map(a, 2.5 * a).abs().max()) < 1e-5
        assert float(value_map(a, 2.5 * a).mean()) > 0.5
        assert float(direction_map(a, -a).min()) == pytest.approx(2.0, abs=1e-5)


def test_maps_are_per_position_and_the_loss_sums_over_stages() -> None:
    t, s = _features(0), _features(1)
    maps = discrepancy_maps(t, s, 0.5)
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16), (2, 8, 8), (2, 4, 4)]
    expected = sum(
        float((value_map(a, b) + 0.5 * direction_map(a, b)).mean())
        for a, b in zip(t, s, strict=True)
    )
    assert float(mkd_loss(t, s, 0.5)) == pytest.approx(expected, rel=1e-6)
    assert float(mkd_loss(t, s, 0.0)) < float(mkd_loss(t, s, 1.0))


def _model(student_input: str) -> OtolithMKD:
    torch.manual_seed(0)
    channels = 1 if student_input == "gray" else 3
    return OtolithMKD(
        FeatureNet(3, WIDTHS),
        Student(channels, WIDTHS),
        student_input=student_input,
        rgb_mean=(0.4, 0.4, 0.35),
        rgb_std=(0.2, 0.2, 0.2),
    ).eval()


@pytest.mark.parametrize("student_input", ["gray", "rgb"])
def test_detector_returns_a_score_and_a_half_resolution_heatmap(student_input: str) -> None:
    model = _model(student_input)
    x = torch.rand(3, 3, 64, 64) * 255
    score, heat = model(x)
    assert score.shape == (3,) and heat.shape == (3, 32, 32)
    torch.testing.assert_close(score, heat.flatten(1).max(1).values)
    model.top_k = 10
    torch.testing.assert_close(model(x)[0], heat.flatten(1).topk(10, 1).values.mean(1))


@torch.no_grad()
@pytest.mark.parametrize("views", [2, 4, 8])
def test_the_maps_of_each_view_are_turned_back_and_averaged(views: int) -> None:
    model = _model("gray")
    x = torch.rand(2, 3, 64, 64) * 255
    turns = range(0, 4, 4 // min(views, 4))
    mirrors = (False, True) if views == 8 else (False,)

    def view(t: torch.Tensor, k: int, mirrored: bool) -> torch.Tensor:
        return torch.rot90(t.flip(-1) if mirrored else t, k, (-2, -1))

    def back(t: torch.Tensor, k: int, mirrored: bool) -> torch.Tensor:
        t = torch.rot90(t, -k, (-2, -1))
        return t.flip(-1) if mirrored else t

    expected = sum(back(model.heatmap(view(x, k, m)), k, m) for k in turns for m in mirrors)
    model.views = views
    score, heat = model(x)
    torch.testing.assert_close(heat, expected / views, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(score, heat.flatten(1).max(1).values)
    k = 1 if views >= 4 else 2  # the map of a turned image is the turned map
    turned = model.heatmap(torch.rot90(x, k, (2, 3)))
    torch.testing.assert_close(turned, torch.rot90(heat, k, (1, 2)), atol=1e-4, rtol=1e-4)
    if views == 8:  # and the map of a mirrored image is the mirrored map
        mirrored = model.heatmap(x.flip(-1))
        torch.testing.assert_close(mirrored, heat.flip(-1), atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_gray_student_sees_only_luminance_and_rgb_student_sees_colour() -> None:
    """Two images with the same gray but different colour: only the teacher and the
    RGB student can tell them apart."""
    rng = np.random.default_rng(0)
    a = rng.uniform(60, 200, (1, 3, 32, 32)).astype(np.float32)
    b = a.copy()
    b[:, 0] += 20.0  # more red ...
    b[:, 2] -= 20.0 * 0.299 / 0.114  # ... and less blue: the same 0.299 R + 0.587 G + 0.114 B
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    gray, rgb = _model("gray"), _model("rgb")
    for s1, s2 in zip(gray.student_features(a), gray.student_features(b), strict=True):
        torch.testing.assert_close(s1, s2, atol=1e-4, rtol=1e-4)
    differs = [
        float((s1 - s2).abs().max())
        for s1, s2 in zip(rgb.student_features(a), rgb.student_features(b), strict=True)
    ]
    assert min(differs) > 1e-3
    teacher = [
        float((t1 - t2).abs().max())
        for t1, t2 in zip(gray.teacher_features(a), gray.teacher_features(b), strict=True)
    ]
    assert min(teacher) > 1e-3


def test_reduce_scores_max_and_top_k_mean() -> None:
    heat = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    torch.testing.assert_close(reduce_scores(heat, 1), torch.tensor([15.0, 31.0]))
    torch.testing.assert_close(reduce_scores(heat, 3), torch.tensor([14.0, 30.0]))


def test_a_deeper_feature_net_has_the_same_stages_and_more_convolutions() -> None:
    x = torch.randn(2, 3, 32, 32)
    shallow, deep = FeatureNet(3, WIDTHS), FeatureNet(3, WIDTHS, depth=4)
    assert [f.shape for f in shallow(x)] == [f.shape for f in deep(x)]
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (shallow, deep)]
    assert convs == [1 + 3 * 2, 1 + 3 * 4]  # the stem, then depth per stage


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="widths needs 4"):
        FeatureNet(3, (8, 8, 8))
    with pytest.raises(ValueError, match="depth"):
        FeatureNet(3, WIDTHS, depth=0)
    with pytest.raises(ValueError, match="student_input"):
        OtolithMKD(
            FeatureNet(3, WIDTHS),
            Student(1, WIDTHS),
            student_input="hsv",  # type: ignore[arg-type]
            rgb_mean=(0.5, 0.5, 0.5),
            rgb_std=(0.2, 0.2, 0.2),
        )


@pytest.mark.parametrize("views", [0, 3, 6, 16])
def test_views_other_than_1_2_4_8_are_refused_by_name(views: int) -> None:
    model = _model("gray")
    with pytest.raises(ValueError, match="views must be one of 1, 2, 4, 8"):
        model.views = views
    assert model.views == 1  # unchanged


def test_a_plan_with_bad_views_fails_before_any_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="views must be one of 1, 2, 4, 8"):
        train_otolith(tmp_path / "out", plan=replace(QUICK, views=3))
    assert not (tmp_path / "out").exists()  # stopped before it made anything
