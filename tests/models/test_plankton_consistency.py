"""Consistency training on unlabelled crops (FixMatch-style): the views, distribution
alignment, pseudo-labels that teach, the fine-tuned model kept unless the result wins on
validation, and ``--unlabelled-method consistency`` on a user's folders."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

import torch

from seawatch.models.plankton.consistency import (
    ConsistencyParams,
    align,
    consistency_train,
    keep_consistent,
    strong_view,
    weak_view,
)
from seawatch.models.plankton.finetune import Schedule, macro_f1, new_model, predict, train_mode
from seawatch.models.plankton.shifted import shifted_set

pytestmark = pytest.mark.train
NAMES = ("bubble", "fiber", "centric_diatom")


def test_the_weak_view_is_a_right_angle_turn_or_flip_and_the_strong_one_cuts_out():
    x = torch.from_numpy(shifted_set(2, 61, taxa=NAMES)[0][:, None]).float()
    weak = weak_view(x, torch.Generator().manual_seed(0))
    for original, view in zip(x, weak, strict=True):
        flips = (original, original.flip(-1))
        dihedral = [torch.rot90(f, k, (1, 2)) for f in flips for k in range(4)]
        assert any(torch.equal(view, d) for d in dihedral)
    strong = strong_view(x, torch.Generator().manual_seed(0), cutout=0.5)
    assert strong.shape == x.shape and float(strong.min()) >= 0 and float(strong.max()) <= 255
    flat = [(s[0].diff(dim=0) == 0).sum() for s in strong]  # the cut square is constant
    assert all(int(f) >= 31 * 32 for f in flat)
    with pytest.raises(ValueError, match="threshold"):
        ConsistencyParams(threshold=1.0)


def test_distribution_alignment_lifts_the_class_the_model_under_predicts():
    probabilities = torch.tensor([[0.5, 0.2, 0.3], [0.7, 0.25, 0.05]])
    running = torch.tensor([0.6, 0.3, 0.1])  # class 2 under-predicted so far
    aligned = align(probabilities, running)
    torch.testing.assert_close(aligned.sum(1), torch.ones(2))
    assert aligned[0].argmax() == 2 and aligned[1].argmax() == 0  # 0.3 of a rare class wins
    torch.testing.assert_close(align(probabilities, torch.full((3,), 1 / 3)), probabilities)


@pytest.fixture(scope="module")
def tuned():
    """A model fine-tuned on 3 labels per class, and consistency training on 20 crops per
    class (the model's own data: the shifted instrument, 3 of its taxa)."""
    train = shifted_set(3, 62, taxa=NAMES)
    unlabelled, truth = shifted_set(20, 63, taxa=NAMES)
    validation = shifted_set(6, 64, taxa=NAMES)
    torch.manual_seed(0)
    model, _ = new_model(3, train[0], None)
    train_mode(model, *train, "full", Schedule(30, 9, 4e-3), seed=0, pretrained=False)
    params = ConsistencyParams(steps=60, batch_size=9, unlabelled_ratio=3, threshold=0.6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained, history = consistency_train(model, train, unlabelled, "full", params=params)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k}: the fine-tuned model was changed"
    return model, trained, history, train, unlabelled, truth, validation, params


def test_consistency_learns_from_the_unlabelled_crops(tuned):
    model, trained, history, _, unlabelled, truth, _, _ = tuned
    assert trained is not model and history[-1]["step"] == 60
    assert all(0.0 <= h["pseudo_share"] <= 1.0 for h in history)
    assert history[-1]["pseudo_share"] > 0.3  # the unlabelled crops did teach
    before = macro_f1(truth, predict(model, unlabelled), 3)
    after = macro_f1(truth, predict(trained, unlabelled), 3)
    assert after >= before - 0.05, (before, after)


def test_the_fine_tuned_model_is_kept_unless_the_result_wins(tuned):
    model, _, _, train, unlabelled, _, validation, params = tuned
    args = dict(mode="full", params=ConsistencyParams(steps=4, batch_size=9, threshold=0.6))
    kept, summary = keep_consistent(model, 1.01, train, unlabelled, validation, **args)
    assert kept is model and summary["kept"] == "fine-tuned"
    kept, summary = keep_consistent(model, -1.0, train, unlabelled, validation, **args)
    assert kept is not model and summary["kept"] == "consistency"
    f1 = macro_f1(validation[1], predict(kept, validation[0]), 3)
    assert summary["validation_macro_f1"] == round(f1, 4)
    assert summary["unlabelled_crops"] == len(unlabelled)
    with pytest.raises(ValueError, match="prepare both the same way"):
        consistency_train(model, train, unlabelled[:, :32], "full", params=params)


def test_train_plankton_consistency_trains_on_an_unlabelled_folder(tmp_path):
    from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton
    from tests.models.test_plankton_selftrain import _folder

    train = _folder(tmp_path / "train", *shifted_set(4, 71, taxa=NAMES))
    val = _folder(tmp_path / "val", *shifted_set(3, 72, taxa=NAMES))
    unlabelled = _folder(tmp_path / "crops", shifted_set(5, 73, taxa=NAMES)[0], None)
    params = FitParams(
        epochs=2, batch_size=8, adaptive=False, finetune="full", unlabelled_method="consistency"
    )
    assert FitParams().unlabelled_method == "self-training"  # the default, chosen on validation
    card = train_plankton(
        tmp_path / "out",
        data=PlanktonData(data_dir=train, val_dir=val, test_dir=val, unlabelled_dir=unlabelled),
        params=params,
        command="test",
    )
    tuning = card.metrics["fine_tuning"]["consistency"]
    assert tuning["unlabelled_method"] == "consistency" and tuning["unlabelled_crops"] == 15
    assert tuning["kept"] in ("consistency", "fine-tuned") and tuning["history"]
