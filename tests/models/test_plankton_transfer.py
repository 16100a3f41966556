"""Learning from a user's images: the shifted instrument, the schedule, the fine-tuning modes,
the classical baseline, SimCLR, the backbone artifact and training on a user's folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

import torch

from seawatch.contracts.card import ONNX_FILE
from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.backbone import (
    BACKBONE_CARD,
    BACKBONE_FILE,
    backbone_card,
    resolve_pretrained,
    save_backbone,
)
from seawatch.models.plankton.classical import features, fit_classical
from seawatch.models.plankton.export import ort_session
from seawatch.models.plankton.finetune import (
    macro_f1,
    new_model,
    schedule_for,
    train_mode,
    transfer,
)
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.shifted import NEW_TAXA, SHIFTED_TAXA, render_shifted, shifted_set
from seawatch.models.plankton.ssl import chance_loss, nt_xent, pretrain_simclr
from seawatch.models.plankton.synthetic import make_dataset

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def tiny() -> tuple[np.ndarray, np.ndarray]:
    """Three easy classes of the shifted instrument, 8 each."""
    images, labels = shifted_set(8, 5, taxa=("bubble", "fiber", "centric_diatom"))
    return images, labels


def test_the_shifted_instrument_is_seeded_and_draws_the_new_taxa():
    a, la = shifted_set(2, 11)
    b, lb = shifted_set(2, 11)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert a.shape == (2 * len(SHIFTED_TAXA), 64, 64) and set(la) == set(range(len(SHIFTED_TAXA)))
    rng = np.random.default_rng(0)
    for taxon in NEW_TAXA:
        roi = render_shifted(taxon, rng)
        assert roi.dtype == np.uint8 and min(roi.shape) >= 40 and roi.std() > 3
    with pytest.raises(ValueError, match="unknown taxon"):
        render_shifted("whale", rng)


def test_the_shifted_instrument_is_noisier_than_the_first():
    """High-frequency energy of the background: shot noise, hot pixels, JPEG (a shift that
    could silently vanish if the noise stage were dropped)."""
    first, _ = make_dataset(20, np.random.default_rng(3), size=64)
    second, _ = shifted_set(2, 3, taxa=SHIFTED_TAXA[:10])

    def roughness(images: np.ndarray) -> float:
        return float(np.mean([cv2.Laplacian(im, cv2.CV_32F)[:8, :8].std() for im in images]))

    assert roughness(second) > 1.5 * roughness(first)


def test_the_schedule_grows_with_small_sets_and_respects_given_values():
    small, large = schedule_for(60), schedule_for(6000)
    assert small.batch_size == 16 and small.epochs * 4 >= 300  # 60 images: 4 steps an epoch
    assert large.batch_size == 128 and large.epochs == 10
    assert schedule_for(60, epochs=3, batch=8) == type(small)(3, 8, small.lr)
    longer = schedule_for(600, target_steps=900)  # batch 64: 10 steps an epoch
    assert (longer.batch_size, longer.epochs) == (64, 90)
    assert schedule_for(600).epochs == 30
    with pytest.raises(ValueError, match="no training images"):
        schedule_for(0)
    with pytest.raises(ValueError, match="target_steps"):
        schedule_for(60, target_steps=0)


def test_a_linear_probe_changes_only_the_head(tiny):
    model, _ = new_model(3, tiny[0], None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_mode(model, *tiny, "linear", schedule_for(24, epochs=2, batch=8), seed=0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), sorted(changed)[:5]
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards


def test_last_stages_mode_leaves_the_stem_and_first_stages_alone(tiny):
    model, _ = new_model(3, tiny[0], None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_mode(model, *tiny, "last", schedule_for(24, epochs=2, batch=8), seed=0)
    after = model.state_dict()
    changed = {
        k.split(".")[0] + "." + k.split(".")[1]
        for k in before
        if not torch.equal(before[k], after[k])
    }
    assert "stages.3" in changed and "stages.2" in changed and "head.2" in changed
    assert not any(c.startswith(("stem.", "stages.0", "stages.1")) for c in changed)


def test_transfer_keeps_the_mode_best_on_validation(tiny, tmp_path):
    start = save_backbone(PlanktonNet(5), tmp_path, {"test": True})
    done = transfer(
        tiny, tiny, 3, start=start, seed=0, schedule=schedule_for(24, epochs=2, batch=8)
    )
    assert set(done.validation_f1) == {"linear", "last", "full"}
    assert done.validation_f1[done.mode] == max(done.validation_f1.values())
    scratch = transfer(tiny, tiny, 3, start=None, seed=0, schedule=schedule_for(24, epochs=1))
    assert set(scratch.validation_f1) == {"full"}


def test_macro_f1_counts_every_class():
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert macro_f1(truth, truth, 3) == 1.0
    assert macro_f1(truth, np.array([0, 0, 1, 1, 1, 1]), 3) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_the_classical_baseline_learns_an_easy_split(tiny):
    x = features(tiny[0])
    assert x.shape[0] == 24 and x.shape[1] > 1700 and np.isfinite(x).all()
    model = fit_classical(tiny, tiny)
    assert macro_f1(tiny[1], model.predict(tiny[0]), 3) > 0.9
    assert model.c in (0.01, 0.1, 1.0, 10.0)


def test_nt_xent_rewards_agreeing_views():
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    agreeing = nt_xent(torch.cat([z, z]), 0.2)
    random = nt_xent(torch.nn.functional.normalize(torch.randn(16, 16), dim=1), 0.2)
    assert agreeing < random
    uniform = nt_xent(torch.nn.functional.normalize(torch.ones(16, 4), dim=1), 0.2)
    assert float(uniform) == pytest.approx(chance_loss(8), rel=1e-4)


def test_simclr_trains_the_backbone_and_not_its_head(tmp_path):
    images, _ = shifted_set(6, 9)
    from seawatch.models.plankton.ssl import SslParams

    backbone, history = pretrain_simclr(images, params=SslParams(epochs=2, batch_size=32), seed=0)
    assert len(history) == 2 and all(np.isfinite(history))
    assert history[-1] < chance_loss(32)  # better than embeddings that know nothing
    fresh = PlanktonNet(2)
    assert not torch.equal(fresh.stem[0].weight, backbone.stem[0].weight)
    with pytest.raises(ValueError, match="at least 64 images"):
        pretrain_simclr(images[:10], params=SslParams(epochs=1, batch_size=32))


def test_the_backbone_artifact_is_checked_and_resolved(tmp_path):
    path = save_backbone(PlanktonNet(4), tmp_path, {"model": "t"})
    card = backbone_card(path)
    assert (
        card["sha256"] and card["source"] == {"model": "t"} and (tmp_path / BACKBONE_CARD).is_file()
    )
    state = torch.load(path, weights_only=True)
    assert not any(k.startswith("head.") or k in ("mean", "std") for k in state)
    torch.save({k: v + 1 for k, v in state.items() if v.is_floating_point()}, path)
    with pytest.raises(ConfigError, match="does not match its card"):
        backbone_card(path)
    assert resolve_pretrained("none", user_data=True) is None
    assert resolve_pretrained("auto", user_data=False) is None
    assert resolve_pretrained(str(path), user_data=False) == path
    committed = resolve_pretrained("auto", user_data=True)
    assert committed is None or committed.name == BACKBONE_FILE


def _folder(root: Path, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> Path:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / names[label] / f"{i}.png"), image)
    return root


def test_training_on_a_users_folders_respects_their_split_and_records_the_start(tmp_path):
    from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton

    names = ("bubble", "fiber", "centric_diatom")
    train = _folder(tmp_path / "train", *shifted_set(6, 21, taxa=names), names)
    val = _folder(tmp_path / "val", *shifted_set(3, 22, taxa=names), names)
    test = _folder(tmp_path / "test", *shifted_set(3, 23, taxa=names), names)
    start = save_backbone(PlanktonNet(10), tmp_path / "bb", {"model": "t"})
    card = train_plankton(
        tmp_path / "out",
        data=PlanktonData(data_dir=train, val_dir=val, test_dir=test),
        params=FitParams(epochs=2, batch_size=8, adaptive=False, finetune="linear", views=8),
        pretrained=start,
        command="test",
    )
    views = card.metrics["test_time_views"]  # 8 dihedral views, as asked, inside the graph
    assert card.training.test_time_views == 8 and views["chosen"] == 8
    assert set(views["validation_macro_f1"]) == {"1", "8"} and "8 dihedral" in card.architecture
    crops = np.stack([c[None] for c in shifted_set(3, 24, taxa=names)[0]]).astype(np.float32)
    session = ort_session(tmp_path / "out" / ONNX_FILE)
    probs = session.run(["probs"], {"image": crops})[0]
    turned = session.run(["probs"], {"image": np.ascontiguousarray(np.rot90(crops, 1, (2, 3)))})
    assert np.abs(turned[0] - probs).max() < 1e-5  # every turn of a crop gets the same answer
    summary = card.training.data
    assert summary["train"]["total"] == 18  # the whole training folder: nothing split off
    assert summary["validation"]["total"] == 9 and summary["test"]["total"] == 9
    assert "given" in summary["split"]["validation"] and card.metrics["n"] == 9
    tuning = card.metrics["fine_tuning"]
    assert tuning["mode"] == "linear" and tuning["start"] == str(start)
    assert card.training.pretrained["sha256"] == backbone_card(start)["sha256"]
    assert (tmp_path / "out" / BACKBONE_FILE).is_file()
    written = json.loads((tmp_path / "out" / BACKBONE_CARD).read_text())
    assert written["source"]["model"] == "plankton-cnn"
    (tmp_path / "val" / "whale").mkdir()
    cv2.imwrite(str(tmp_path / "val" / "whale" / "w.png"), np.full((50, 50), 200, np.uint8))
    with pytest.raises(ConfigError, match="classes the training folder lacks"):
        train_plankton(
            tmp_path / "out2",
            data=PlanktonData(data_dir=train, val_dir=val),
            params=FitParams(epochs=1, batch_size=8, adaptive=False),
            command="test",
        )


def test_the_ssl_command_pretrains_a_backbone_from_an_unlabelled_folder(tmp_path):
    from click.testing import CliRunner

    from seawatch.cli import cli

    images, _ = shifted_set(6, 31)
    folder = tmp_path / "unlabelled" / "cruise-1"
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i}.png"), image)
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "ssl"
    result = CliRunner().invoke(
        cli,
        ["train", "plankton-ssl", "--data-dir", str(tmp_path / "unlabelled"), "--out", str(out),
         "--start", "none", "--epochs", "1", "--batch-size", "32", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = backbone_card(out / BACKBONE_FILE)
    assert card["source"]["data"] == {
        "folder": str(tmp_path / "unlabelled"),
        "crops": len(images),
        "unreadable": 1,
    }
    assert len(card["source"]["loss_per_epoch"]) == 1 and (out / "loss.png").stat().st_size > 1000
    model = PlanktonNet(3)
    from seawatch.models.plankton.pretrained import load_backbone

    assert load_backbone(model, out / BACKBONE_FILE)["loaded_tensors"] > 20
