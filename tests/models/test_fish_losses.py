"""Sub-center ArcFace and the masked inpainting loss."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")

import torch
import torch.nn.functional as F

from seawatch.models.fish.losses import SubCenterArcFace, masked_l1, patch_mask

pytestmark = pytest.mark.train


def test_margin_lowers_only_the_target_logit() -> None:
    torch.manual_seed(0)
    head = SubCenterArcFace(16, 5, k=3, scale=10.0, margin=0.3)
    emb = F.normalize(torch.randn(6, 16), dim=1)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    with_margin = head.logits(emb, labels)
    head.margin = 0.0
    plain = head.logits(emb, labels)
    torch.testing.assert_close(plain, 10.0 * head.cosine(emb))
    rows = torch.arange(6)
    assert (with_margin[rows, labels] < plain[rows, labels]).all()
    others = torch.ones_like(plain, dtype=torch.bool)
    others[rows, labels] = False
    torch.testing.assert_close(with_margin[others], plain[others])
    # cos(theta + m) for the target where theta + m < pi
    theta = torch.acos(plain[rows, labels] / 10.0)
    torch.testing.assert_close(with_margin[rows, labels], 10.0 * torch.cos(theta + 0.3))


def test_cosine_takes_the_best_sub_centre() -> None:
    head = SubCenterArcFace(4, 2, k=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    emb = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(head.cosine(emb), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_loss_has_finite_gradients_and_training_lowers_it() -> None:
    torch.manual_seed(0)
    head = SubCenterArcFace(8, 4, k=2, scale=16.0, margin=0.5)
    emb = torch.randn(16, 8, requires_grad=True)
    labels = torch.arange(16) % 4
    loss = head(emb, labels)
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert torch.isfinite(head.weight.grad).all() and head.weight.grad.abs().sum() > 0
    optimizer = torch.optim.SGD([emb, *head.parameters()], lr=0.5)
    for _ in range(50):
        optimizer.zero_grad()
        head(emb, labels).backward()
        optimizer.step()
    assert head(emb, labels).item() < loss.item() / 2
    with pytest.raises(ValueError, match="margin"):
        SubCenterArcFace(8, 4, margin=math.pi)


def test_inpainting_loss_counts_only_hidden_pixels() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, 3, 16, 32)
    recon = torch.randn(2, 3, 16, 32)
    mask = torch.zeros(2, 1, 16, 32)
    mask[0, :, :8, :8] = 1
    loss = masked_l1(recon, target, mask)
    expected = (recon - target)[0, :, :8, :8].abs().mean()
    torch.testing.assert_close(loss, expected)
    changed = target.clone()
    changed[:, :, 8:, :] += 100.0  # outside the mask: no effect
    changed[1] -= 50.0
    torch.testing.assert_close(masked_l1(recon, changed, mask), loss)
    changed[0, :, 0, 0] += 10.0  # inside: counted
    assert masked_l1(recon, changed, mask) > loss
    assert masked_l1(recon, target, torch.zeros_like(mask)).item() == 0.0


def test_patch_mask_hides_whole_patches_on_skin_only() -> None:
    generator = torch.Generator().manual_seed(0)
    skin = torch.zeros(64, 32, 64, dtype=torch.bool)
    skin[:, 8:24, 16:48] = True  # 2 x 4 patches of 8 px are skin
    mask = patch_mask(skin, generator, patch=8, ratio=(0.5, 0.5), p_sample=1.0)
    assert mask.shape == (64, 1, 32, 64)
    assert mask[:, 0][~skin].sum() == 0  # nothing hidden off the skin
    cells = mask[:, :, ::8, ::8]
    torch.testing.assert_close(
        mask, cells.repeat_interleave(8, 2).repeat_interleave(8, 3)
    )  # whole patches
    share = mask.sum() / skin.sum()
    assert 0.35 < share < 0.65
    none = patch_mask(skin, generator, patch=8, p_sample=0.0)
    assert none.sum() == 0
