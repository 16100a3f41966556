"""The teacher's auxiliary task: generic corruptions, their labels and the balanced loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from seawatch.models.otolith.corruptions import (
    CLEAN_SHARE,
    KINDS,
    boundary_band,
    corrupt_batch,
    corrupt_one,
    foreground_mask,
    localisation_loss,
    object_cut_mask,
)
from seawatch.models.otolith.head import prepare_otolith
from seawatch.models.otolith.synthetic import render_otolith

pytestmark = pytest.mark.train
SIZE = 64


@pytest.fixture(scope="module")
def otoliths() -> torch.Tensor:
    rng = np.random.default_rng(0)
    images = [prepare_otolith(render_otolith(rng, size=96), SIZE) for _ in range(8)]
    return torch.from_numpy(np.stack(images))


@pytest.fixture(scope="module")
def textures() -> torch.Tensor:
    rng = np.random.default_rng(1)
    return torch.from_numpy(rng.integers(0, 256, (4, 3, SIZE, SIZE), dtype=np.uint8))


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_alters_only_its_region(
    kind: str, otoliths: torch.Tensor, textures: torch.Tensor
) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    image = otoliths[0].float()
    altered, region = corrupt_one(image, kind, rng, textures)
    assert altered.shape == image.shape and region.shape == image.shape[-2:]
    assert float(altered.min()) >= 0 and float(altered.max()) <= 255
    outside = region == 0
    assert torch.equal(altered[:, outside], image[:, outside]), "nothing changes outside"
    assert float((altered - image).abs().sum()) > 0, "something changes inside"


def test_unknown_kind_is_refused(otoliths: torch.Tensor, textures: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown corruption kind 'scribble'"):
        corrupt_one(otoliths[0].float(), "scribble", np.random.default_rng(0), textures)


def test_batch_labels_are_binary_and_some_images_stay_clean(
    otoliths: torch.Tensor, textures: torch.Tensor
) -> None:
    batch = otoliths.float().repeat(5, 1, 1, 1)  # 40 images
    out, labels = corrupt_batch(batch, np.random.default_rng(0), textures)
    assert out.shape == batch.shape and labels.shape == (40, 1, SIZE, SIZE)
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    clean = int((labels.flatten(1).sum(1) == 0).sum())
    expected = CLEAN_SHARE * len(batch)
    assert 0.3 * expected <= clean <= 2.5 * expected + 4  # untouched (or touched nothing)
    assert int((labels.flatten(1).sum(1) > 0).sum()) >= 15
    assert float((out - batch).abs().mean()) > 0.3, "every image gets fresh sensor noise"


def test_defocusing_a_flat_image_labels_nothing(textures: torch.Tensor) -> None:
    flat = torch.full((4, 3, SIZE, SIZE), 120.0)
    for seed in range(5):
        _, labels = corrupt_batch(flat, np.random.default_rng(seed), textures, ("defocus",))
        assert float(labels.sum()) == 0, "no visible change, no label"


def test_spots_on_a_flat_image_are_small_and_labelled(textures: torch.Tensor) -> None:
    flat = torch.full((8, 3, SIZE, SIZE), 200.0)
    out, labels = corrupt_batch(flat, np.random.default_rng(3), textures, ("spots",))
    area = labels.flatten(1).sum(1)
    assert int((area > 0).sum()) >= 3
    assert float(area.max()) < 0.2 * SIZE * SIZE, "spots are small"
    spotted = area > 0
    assert float((out[spotted] - flat[spotted]).abs().amax()) > 50


def test_cut_shows_the_tray_and_labels_only_a_band_along_the_new_edge(
    textures: torch.Tensor,
) -> None:
    ys, xs = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    disc = (((xs - SIZE / 2) ** 2 + (ys - SIZE / 2) ** 2) < (0.4 * SIZE) ** 2).float()
    image = (20.0 + 200.0 * disc).expand(1, 3, SIZE, SIZE)  # a bright body on a dark tray
    bands, taken = [], []
    for seed in range(10):
        out, labels = corrupt_batch(image, np.random.default_rng(seed), textures, ("cut",))
        lost = (disc > 0) & (out[0].mean(0) < 120)  # body pixels that now show the tray
        bands.append(float(labels.sum()))
        taken.append(float(lost.sum()))
        assert float(out[0].min()) >= 0 and float(out[0][:, disc == 0].mean()) < 40
    assert max(taken) > 0, "some cut took a piece of the body away, filled like the tray"
    assert 0 < sum(bands) < sum(taken), "a band along the edge, not the whole lost piece"


def test_object_cuts_always_take_a_piece_of_the_object() -> None:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    r = np.sqrt((xs - 20) ** 2 + (ys - 40) ** 2)
    disc = r < 12  # an object off centre, where a random line would often miss it
    image = torch.from_numpy(np.where(disc, 220.0, 20.0)).float().expand(3, SIZE, SIZE)
    foreground = foreground_mask(image, torch.full((3,), 20.0))
    assert (foreground == disc).mean() > 0.97
    chips = 0
    for seed in range(40):
        mask = object_cut_mask(np.random.default_rng(seed), foreground)
        assert mask is not None
        taken = (mask > 0.5) & disc
        assert taken.sum() > 0, f"seed {seed}: the cut missed the object"
        if mask.sum() < 0.3 * disc.sum():  # a chip: a bite out of the outline
            chips += 1
            assert (r[mask > 0.5] > 4).all(), "a chip sits on the outline, not the centre"
    assert 8 <= chips <= 32, "about half are chips, half are broken-off pieces"
    empty = np.zeros((SIZE, SIZE), bool)
    assert object_cut_mask(np.random.default_rng(0), empty) is None, "no object, no object cut"


def test_boundary_band_is_a_ring_around_a_disc() -> None:
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = (((xs - 32) ** 2 + (ys - 32) ** 2) < 15**2).float()
    band = boundary_band(disc, 2)
    r = torch.sqrt((xs - 32) ** 2 + (ys - 32) ** 2)
    assert float(band[r < 11].sum()) == 0 and float(band[r > 19].sum()) == 0
    assert float(band.sum()) == pytest.approx(2 * math.pi * 15 * 4, rel=0.25)


def test_localisation_loss_weighs_a_small_spot_like_a_large_region() -> None:
    small = torch.zeros(1, 1, 16, 16)
    small[..., 3, 3] = 1.0
    large = torch.zeros(1, 1, 16, 16)
    large[..., :8, :] = 1.0
    zero = torch.zeros(1, 1, 16, 16)
    for target in (small, large):  # an undecided network pays log 2 on each side
        loss = localisation_loss(zero, target, hard_share=0)
        assert float(loss) == pytest.approx(2 * math.log(2), rel=1e-4)
        loss = localisation_loss(zero, target)  # and log 2 again on its hardest negatives
        assert float(loss) == pytest.approx(3 * math.log(2), rel=1e-4)
    perfect = (small * 2 - 1) * 20
    assert float(localisation_loss(perfect, small)) < 1e-6
    missed = -20 * torch.ones(1, 1, 16, 16)  # says "clean" everywhere
    assert float(localisation_loss(missed, small)) > 10, "missing one spot costs a lot"
    clean = torch.zeros(2, 1, 16, 16)
    loss = localisation_loss(zero.repeat(2, 1, 1, 1), clean, hard_share=0)
    assert float(loss) == pytest.approx(math.log(2))


def test_hard_negatives_make_a_few_false_alarms_costly() -> None:
    clean = torch.zeros(1, 1, 32, 32)
    calm = -20 * torch.ones(1, 1, 32, 32)
    alarms = calm.clone()
    alarms[..., 5, 5:10] = 20.0  # fires on five clean pixels (0.5 % of the image)
    plain = float(localisation_loss(alarms, clean, hard_share=0))
    assert plain < 0.2, "averaged over the whole image, five false alarms cost nothing"
    hard = float(localisation_loss(alarms, clean))  # the hardest 1 %: 10 pixels, 5 of them 20
    assert hard == pytest.approx(plain + 10.0, rel=0.01)
    assert float(localisation_loss(calm, clean)) < 1e-6
