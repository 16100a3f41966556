"""Plankton augmentation and local pretrained weights (torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seawatch.contracts.errors import ConfigError  # noqa: E402
from seawatch.models.plankton.augment import AugmentParams, augment  # noqa: E402
from seawatch.models.plankton.network import PlanktonNet  # noqa: E402
from seawatch.models.plankton.pretrained import load_backbone  # noqa: E402

pytestmark = pytest.mark.train


def _disc(n: int = 8, size: int = 64) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    img = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 10**2, 40.0, 220.0).astype(np.float32)
    return torch.from_numpy(np.repeat(img[None, None], n, 0))


def test_augment_is_seeded_keeps_shape_and_range_and_varies_per_sample():
    x = _disc()
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 255
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], a[1])


def test_rotation_fills_from_the_border_not_black_corners():
    bar = torch.full((16, 1, 64, 64), 220.0)
    bar[:, :, 28:36, :] = 40.0  # a horizontal bar touching both sides
    params = AugmentParams(blur_probability=0.0, contrast=(1.0, 1.0), brightness=0.0)
    out = augment(bar, torch.Generator().manual_seed(0), params)
    corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners >= 35).all()  # never the zero padding of a naive rotation
    dark_rows = (out[:, 0] < 130).float().mean(dim=2).max(dim=1).values
    assert (dark_rows < 0.99).any()  # some samples were rotated off horizontal


def test_blur_softens_edges():
    x = _disc(4)
    sharp = AugmentParams(
        blur_probability=0.0, scale=(1, 1), shift=0, contrast=(1, 1), brightness=0
    )
    blurred = AugmentParams(
        blur_probability=1.0,
        blur_sigma=(1.4, 1.4),
        scale=(1, 1),
        shift=0,
        contrast=(1, 1),
        brightness=0,
    )
    g = torch.Generator().manual_seed(3)
    s = augment(x, g, sharp)
    b = augment(x, torch.Generator().manual_seed(3), blurred)
    edge = lambda t: t.diff(dim=3).abs().amax(dim=(1, 2, 3)).mean()  # steepest step  # noqa: E731
    assert edge(b) < 0.8 * edge(s)


def test_pretrained_backbone_loads_matching_tensors_and_keeps_a_fresh_head(tmp_path):
    torch.manual_seed(0)
    source = PlanktonNet(5)
    path = tmp_path / "backbone.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = PlanktonNet(7)
    head_before = target.head[2].weight.clone()
    report = load_backbone(target, path)
    torch.testing.assert_close(target.stem[0].weight, source.stem[0].weight)
    torch.testing.assert_close(target.head[2].weight, head_before)
    assert report["loaded_tensors"] > 20 and report["skipped_tensors"] >= 2


def test_pretrained_file_that_matches_nothing_is_an_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ConfigError, match="no tensor matches"):
        load_backbone(PlanktonNet(3), path)
    with pytest.raises(ConfigError, match="no such file"):
        load_backbone(PlanktonNet(3), tmp_path / "missing.pt")
