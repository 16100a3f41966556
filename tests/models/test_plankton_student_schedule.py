"""The self-training student's schedule: the teacher's by default, or an explicit number of
passes over labels + pseudo-labels (``SelfTrainParams.student_epochs``), recorded per round."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from seawatch.models.plankton.finetune import Schedule, new_model, train_mode
from seawatch.models.plankton.selftrain import (
    SelfTrainParams,
    optimiser_steps,
    self_train,
    student_schedule,
)
from seawatch.models.plankton.shifted import shifted_set

pytestmark = pytest.mark.train
NAMES = ("bubble", "fiber", "centric_diatom")


def test_the_student_schedule_keeps_the_teachers_batch_and_sets_its_epochs():
    teacher = Schedule(epochs=90, batch_size=64, lr=4e-3)
    assert student_schedule(teacher) == teacher
    longer = student_schedule(teacher, 180)
    assert (longer.epochs, longer.batch_size, longer.lr) == (180, 64, 4e-3)
    # 600 labels + 3,263 pseudo-labels at batch 64: 61 steps an epoch
    assert optimiser_steps(teacher, 600) == 900
    assert optimiser_steps(teacher, 3_863) == 90 * 61
    assert optimiser_steps(longer, 3_863) == 180 * 61
    with pytest.raises(ValueError, match="student epochs must be >= 1"):
        student_schedule(teacher, 0)
    with pytest.raises(ValueError, match="student_epochs must be >= 1"):
        SelfTrainParams(student_epochs=0)
    assert "student 180 epochs" in SelfTrainParams(student_epochs=180).describe()
    assert "student" not in SelfTrainParams().describe().split("labels per class")[1]


@pytest.mark.parametrize("epochs", [None, 3])
def test_self_training_trains_the_student_for_its_epochs(epochs):
    train = shifted_set(3, 42, taxa=NAMES, size=32)
    unlabelled, _ = shifted_set(6, 43, taxa=NAMES, size=32)
    validation = shifted_set(2, 44, taxa=NAMES, size=32)
    torch.manual_seed(0)
    teacher, _ = new_model(3, train[0], None)
    schedule = Schedule(epochs=6, batch_size=8, lr=4e-3)
    train_mode(teacher, *train, "full", schedule, seed=0, pretrained=False)
    done = self_train(
        teacher,
        train,
        unlabelled,
        validation,
        start=None,
        mode="full",
        params=SelfTrainParams(threshold=0.4, cap=6, student_epochs=epochs),
        schedule=schedule,
    )
    (round_,) = done.rounds
    n_student = len(train[1]) + int(round_["pseudo_labels"])
    assert int(round_["pseudo_labels"]) > 0
    assert round_["student_epochs"] == (epochs or schedule.epochs)
    assert round_["student_steps"] == (epochs or 6) * math.ceil(n_student / 8)
    assert np.isfinite(float(round_["validation_macro_f1"]))
