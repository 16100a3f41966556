"""The few-label benchmark's arms (``benchmarks/few_labels.py``): the draws and seeds, one
network per arm and seed, and their scores on validation and every test draw. A worker
process gets the draws once (:func:`init_worker`) and runs :func:`run_seed` per seed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from seawatch.models.plankton.classical import fit_classical
from seawatch.models.plankton.finetune import (
    MODES,
    TARGET_STEPS,
    macro_f1,
    new_model,
    predict,
    schedule_for,
    train_mode,
    transfer,
)
from seawatch.models.plankton.selftrain import SelfTrainParams, keep_best, self_train
from seawatch.models.plankton.shifted import SHIFTED_TAXA
from seawatch.models.plankton.unlabelled import learn_from_unlabelled

UNLABELLED_SEED, POOL_SEED, VALIDATION_SEED, TEST_SEED = 7_000_001, 7_200_000, 7_100_003, 7_900_007
POOL_PER_CLASS, VALIDATION_PER_CLASS, TEST_PER_CLASS = 50, 20, 100
N_CLASSES = len(SHIFTED_TAXA)
SELF_ARMS = {  # what --unlabelled-dir does, and its options
    "ssl+self": SelfTrainParams(),
    "ssl+self2": SelfTrainParams(rounds=2),
    "ssl+flex": SelfTrainParams(min_threshold=0.6),
    "ssl+flex2": SelfTrainParams(rounds=2, min_threshold=0.6),
}
METHODS = ("classical", "scratch", "synthetic", "ssl", *SELF_ARMS, "ssl+cons")
RESERVED = range(7_900_000, 8_000_000)


def first_per_class(images: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The first ``k`` images of every class (pools are shuffled, so nested random subsets)."""
    keep = np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(N_CLASSES)])
    keep.sort()
    return images[keep], labels[keep]


def fine_tune_schedule(n_train: int):
    """The fine-tuning schedule of ``n_train`` labelled images (``--steps`` optimiser steps);
    the self-training student and the consistency run get the teacher's."""
    return schedule_for(n_train, target_steps=_CONTEXT.get("steps", TARGET_STEPS))


def run_nn(train, start: Path | None, mode: str, seed: int):
    """Train one network (``mode`` from ``start``)."""
    torch.manual_seed(seed)
    model, _ = new_model(N_CLASSES, train[0], start)
    schedule = fine_tune_schedule(len(train[1]))
    train_mode(model, *train, mode, schedule, seed=seed, pretrained=start is not None)
    return model


def scores(tests: dict[int, tuple], predicted) -> dict[int, float]:
    """Macro-F1 on every test draw; ``predicted(images)`` gives class indices."""
    return {s: macro_f1(t[1], predicted(t[0]), N_CLASSES) for s, t in tests.items()}


def score_net(out: dict, arm: str, net) -> None:
    """``arm``'s test and validation macro-F1 into ``out``, and with ``--views V`` those of
    the same network averaging V dihedral views (``arm@V``)."""
    validation = _CONTEXT["validation"]
    for views in sorted({1, _CONTEXT.get("views", 1)}):
        name = arm if views == 1 else f"{arm}@{views}"
        out["scores"][name] = scores(_CONTEXT["tests"], lambda x, v=views: predict(net, x, views=v))
        predicted = predict(net, validation[0], views=views)
        out["validation"][name] = macro_f1(validation[1], predicted, N_CLASSES)


def self_train_arms(wanted, teacher, train, validation, unlabelled, start, mode, seed) -> dict:
    """The ssl model as teacher of the self-training arms in ``wanted`` (what ``seawatch
    train plankton --unlabelled-dir`` does with their options): {arm: (kept model, card
    summary)}. Arms that differ only in rounds share one run of the most rounds."""
    teacher_f1 = macro_f1(validation[1], predict(teacher, validation[0]), N_CLASSES)
    groups: dict[SelfTrainParams, int] = {}
    for arm in wanted:
        one = replace(self_arm(arm), rounds=1)
        groups[one] = max(groups.get(one, 0), self_arm(arm).rounds)
    runs = {
        one: self_train(
            teacher,
            train,
            unlabelled,
            validation,
            start=start,
            mode=mode,
            params=replace(one, rounds=rounds),
            seed=seed,
            schedule=fine_tune_schedule(len(train[1])),
        )
        for one, rounds in groups.items()
    }
    out = {}
    for arm in wanted:
        params = self_arm(arm)
        done = runs[replace(params, rounds=1)]
        out[arm] = keep_best(teacher, teacher_f1, done, params, len(unlabelled), params.rounds)
    return out


_CONTEXT: dict = {}


def self_arm(arm: str) -> SelfTrainParams:
    """A self-training arm's parameters, the student's epochs from ``--student-epochs``."""
    return replace(SELF_ARMS[arm], student_epochs=_CONTEXT.get("student_epochs"))


def init_worker(context: dict, threads: int) -> None:
    """A worker's data (pools, draws, starts) and its torch threads."""
    _CONTEXT.update(context)
    torch.set_num_threads(threads)


def run_seed(k: int, seed: int, modes: dict[str, str] | None) -> dict:
    """Every arm for one label count and one seed; ``modes`` None: choose them on
    validation (the first seed). Returns the test scores, the choices and the self-training
    summary."""
    c = _CONTEXT
    methods, validation = c["methods"], c["validation"]
    train = first_per_class(*c["pools"][seed], k)
    out: dict = {"scores": {}, "validation": {}, "chosen": {}, "self": None, "consistency": None}
    if "classical" in methods:
        model = fit_classical(train, validation)
        out["scores"]["classical"] = scores(c["tests"], model.predict)
    nets = {}
    for method, start in c["starts"].items():
        if modes is None:
            done = transfer(
                train,
                validation,
                N_CLASSES,
                start=start,
                modes=MODES,
                seed=seed,
                schedule=fine_tune_schedule(len(train[1])),
            )
            out["chosen"][method] = {"mode": done.mode, "validation_macro_f1": done.validation_f1}
            net = done.model
        else:
            net = run_nn(train, start, modes[method], seed)
        nets[method] = net
        score_net(out, method, net)
    wanted = [m for m in SELF_ARMS if m in methods]
    if wanted:
        mode = modes["ssl"] if modes else out["chosen"]["ssl"]["mode"]
        arms = self_train_arms(
            wanted, nets["ssl"], train, validation, c["unlabelled"], c["starts"]["ssl"], mode, seed
        )
        out["self"] = {arm: summary for arm, (_, summary) in arms.items()}
        for arm, (student, _) in arms.items():
            score_net(out, arm, student)
    if "ssl+cons" in methods:
        mode = modes["ssl"] if modes else out["chosen"]["ssl"]["mode"]
        teacher_f1 = macro_f1(validation[1], predict(nets["ssl"], validation[0]), N_CLASSES)
        kept, out["consistency"] = learn_from_unlabelled(
            nets["ssl"],
            teacher_f1,
            train,
            c["unlabelled"],
            validation,
            method="consistency",
            start=c["starts"]["ssl"],
            mode=mode,
            schedule=fine_tune_schedule(len(train[1])),
            seed=seed,
        )
        score_net(out, "ssl+cons", kept)
    return out
