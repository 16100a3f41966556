"""Self-training on unlabelled crops: the dihedral teacher, the pseudo-label choice, the
student kept only when it wins on validation, and ``--unlabelled-dir`` on a user's folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.finetune import Schedule, macro_f1, new_model, predict, train_mode
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.selftrain import (
    SelfTrainParams,
    dihedral_probabilities,
    keep_better,
    pick_pseudo_labels,
    self_train,
)
from seawatch.models.plankton.shifted import shifted_set

pytestmark = pytest.mark.train
NAMES = ("bubble", "fiber", "centric_diatom")


def test_the_dihedral_teacher_ignores_rotation_and_flip():
    torch.manual_seed(0)
    model = PlanktonNet(3)
    images, _ = shifted_set(2, 41, taxa=NAMES)
    probs = dihedral_probabilities(model, images)
    assert probs.shape == (6, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    turned = np.ascontiguousarray(np.rot90(images, 1, (1, 2)))
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    np.testing.assert_allclose(dihedral_probabilities(model, turned), probs, atol=1e-4)
    np.testing.assert_allclose(dihedral_probabilities(model, mirrored), probs, atol=1e-4)
    one_view = torch.softmax(model.logits(torch.from_numpy(mirrored[:, None]).float()), 1)
    assert not np.allclose(one_view.detach().numpy(), probs, atol=1e-4)  # views do differ


def test_pseudo_labels_need_the_threshold_and_the_most_confident_win_the_cap():
    probs = np.array(
        [
            [0.90, 0.05, 0.05],  # third most confident of class 0: over the cap
            [0.70, 0.20, 0.10],  # under the threshold
            [0.99, 0.005, 0.005],
            [0.95, 0.03, 0.02],
            [0.05, 0.92, 0.03],
            [0.10, 0.10, 0.80],
        ]
    )
    chosen, labels = pick_pseudo_labels(probs, threshold=0.8, cap=2)
    assert chosen.tolist() == [2, 3, 4, 5]
    assert labels.tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="threshold"):
        SelfTrainParams(threshold=1.0)


@pytest.fixture(scope="module")
def taught():
    """A teacher trained on 3 labels per class, and what self-training makes of it."""
    train = shifted_set(3, 42, taxa=NAMES)
    unlabelled, truth = shifted_set(20, 43, taxa=NAMES)
    validation = shifted_set(6, 44, taxa=NAMES)
    torch.manual_seed(0)
    teacher, _ = new_model(3, train[0], None)
    schedule = Schedule(epochs=30, batch_size=9, lr=4e-3)
    train_mode(teacher, *train, "full", schedule, seed=0, pretrained=False)
    done = self_train(
        teacher,
        train,
        unlabelled,
        validation,
        start=None,
        mode="full",
        params=SelfTrainParams(threshold=0.5, cap=15),
        schedule=schedule,
    )
    return teacher, done, train, unlabelled, truth, validation


def test_the_student_learns_the_confident_pseudo_labels(taught):
    teacher, done, _, unlabelled, _, _ = taught
    (round_,) = done.rounds
    assert 0 < round_["pseudo_labels"] <= 45 and max(round_["per_class"]) <= 15
    assert done.model is not teacher
    chosen, pseudo = pick_pseudo_labels(dihedral_probabilities(teacher, unlabelled), 0.5, 15)
    agreement = float((predict(done.model, unlabelled[chosen]) == pseudo).mean())
    assert agreement > 0.8, agreement  # it was trained on them


def test_the_student_is_kept_only_if_it_wins_on_validation(taught):
    teacher, _, train, unlabelled, _, validation = taught
    args = dict(start=None, mode="full", params=SelfTrainParams(threshold=0.5, cap=15))
    kept, summary = keep_better(teacher, 1.01, train, unlabelled, validation, **args)
    assert kept is teacher and summary["kept"] == "teacher"
    kept, summary = keep_better(teacher, -1.0, train, unlabelled, validation, **args)
    assert kept is not teacher and summary["kept"] == "student"
    assert summary["unlabelled_crops"] == len(unlabelled)
    f1 = macro_f1(validation[1], predict(kept, validation[0]), 3)
    assert summary["rounds"][-1]["validation_macro_f1"] == round(f1, 4)


def _folder(root: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    for i, image in enumerate(images):
        sub = root / (NAMES[labels[i]] if labels is not None else "cruise")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i}.png"), image)
    return root


def test_train_plankton_self_trains_on_an_unlabelled_folder(tmp_path):
    from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton

    train = _folder(tmp_path / "train", *shifted_set(4, 51, taxa=NAMES))
    val = _folder(tmp_path / "val", *shifted_set(3, 52, taxa=NAMES))
    unlabelled = _folder(tmp_path / "crops", shifted_set(5, 53, taxa=NAMES)[0], None)
    params = FitParams(
        epochs=2, batch_size=8, adaptive=False, finetune="full", unlabelled_method="self-training"
    )
    card = train_plankton(
        tmp_path / "out",
        data=PlanktonData(data_dir=train, val_dir=val, test_dir=val, unlabelled_dir=unlabelled),
        params=params,
        command="test",
    )
    tuning = card.metrics["fine_tuning"]["self_training"]
    assert tuning["unlabelled_crops"] == 15 and tuning["kept"] in ("student", "teacher")
    assert tuning["unlabelled_method"] == "self-training"
    assert len(tuning["rounds"]) == 1
    with pytest.raises(ConfigError, match="--unlabelled-dir goes with --data-dir"):
        train_plankton(
            tmp_path / "out2", data=PlanktonData(unlabelled_dir=unlabelled), params=params
        )
