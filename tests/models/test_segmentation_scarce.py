"""The scarce-label experiment's plumbing (``benchmarks/segmentation_scarce.py``): every row
fitted, kept on disk and loaded back under its own name, and the two mIoU criteria read
from the right rows."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from seawatch.models.segmentation.data import make_tiles
from seawatch.models.segmentation.fit import TrainData, _batch
from seawatch.models.segmentation.scarce import (
    fit_rows,
    gains,
    load_rows,
    paired_interval,
    refit_students,
    save_rows,
    score_rows,
    tile_sums,
)
from seawatch.models.segmentation.selftrain import QUICK, ROWS, SERVED_ROW, draw_shares


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rows = fit_rows(replace(QUICK, unlabelled_extra=1))
    folder = tmp_path_factory.mktemp("scarce")
    save_rows(rows, folder)
    return rows, folder


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_every_row_comes_back_under_its_own_name(fitted):
    rows, folder = fitted
    assert set(rows.nets) == set(dict(ROWS))
    loaded = load_rows(folder)
    assert set(loaded.nets) == set(rows.nets)
    names = list(rows.nets)
    for i, name in enumerate(names):  # the rows differ, so a swap would show
        assert all(not _same(rows.nets[name], rows.nets[other]) for other in names[i + 1 :])
        assert _same(loaded.nets[name], rows.nets[name]), name
    assert _same(loaded.teacher, rows.teacher) and _same(loaded.quality, rows.quality)
    record = json.loads((folder / "plan.json").read_text())
    assert record["plan"]["unlabelled_extra"] == 1 and record["plan"]["pool_seed"] == 7_100_200


def test_the_loaded_rows_score_as_the_fitted_ones(fitted):
    rows, folder = fitted
    tiles = make_tiles(1, 7_100_210, keep_full=True)
    assert score_rows(load_rows(folder), tiles) == score_rows(rows, tiles)
    assert set(score_rows(rows, tiles)) == {"threshold", "teacher", *dict(ROWS)}


def test_the_criteria_read_the_student_against_the_third_and_against_all():
    scores = {
        "supervised_third": {"miou": 0.50},
        "supervised_all": {"miou": 0.545},
        "self_training_quality_kd": {"miou": 0.54},
    }
    out = gains(scores)
    assert out["student_minus_supervised_third_points"] == 4.0
    assert out["supervised_all_minus_student_points"] == 0.5
    assert out["at_least_3_points_over_third"] and out["within_1_point_of_all"]
    scores["supervised_all"]["miou"] = 0.56
    assert not gains(scores)["within_1_point_of_all"]


def test_a_folder_without_fitted_rows_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no fitted rows"):
        load_rows(tmp_path)


def test_students_refit_from_the_kept_teacher_are_the_students_of_the_same_plan(fitted, tmp_path):
    rows, folder = fitted
    plan = replace(QUICK, unlabelled_extra=1)
    again = refit_students(folder, plan)
    assert set(again.nets) == set(rows.nets)
    for name in rows.nets:  # students fitted again, supervised rows kept: all as before
        assert _same(again.nets[name], rows.nets[name]), name
    shared = refit_students(folder, replace(plan, labelled_share=0.5))
    assert _same(shared.nets["supervised_all"], rows.nets["supervised_all"])
    assert not _same(shared.nets[SERVED_ROW], rows.nets[SERVED_ROW])
    assert shared.plan["labelled_share"] == 0.5
    with pytest.raises(ValueError, match="labelled"):
        refit_students(folder, replace(plan, labelled=2))


def test_a_labelled_share_draws_that_share_of_the_batches_from_the_labelled_tiles():
    draw = draw_shares(3, 6, 0.5)
    assert draw.sum() == pytest.approx(1.0) and draw[:3].sum() == pytest.approx(0.5)
    inputs = np.repeat(np.arange(9, dtype=np.uint8)[:, None, None], 16, 1).repeat(16, 2)
    zeros = np.zeros_like(inputs)
    data = TrainData(inputs, zeros, zeros, draw=np.eye(9)[4])  # only tile 4 can be drawn
    x = _batch(data, np.random.default_rng(0), 32, 8)[0]
    assert bool((x == 4).all())
    with pytest.raises(ValueError, match="labelled_share"):
        replace(QUICK, labelled_share=1.0)


def test_the_tile_sums_add_up_to_each_rows_miou(fitted):
    rows, _ = fitted
    odd = copy.deepcopy(rows.nets["supervised_all"])  # one row unlike the others (tiny fits
    with torch.no_grad():  # score alike): background everywhere, no object found
        odd.head.bias.fill_(-20.0)
    rows = replace(rows, nets={**rows.nets, "supervised_all": odd})
    tiles = make_tiles(2, 7_100_210, keep_full=True)
    scores, sums = score_rows(rows, tiles), tile_sums(rows, tiles)
    assert set(sums) == set(scores) - {"threshold"}
    for name, parts in sums.items():
        assert parts.shape == (2, 2)
        assert parts[:, 0].sum() / parts[:, 1].sum() == pytest.approx(
            scores[name]["miou"], abs=1e-4
        )
    assert scores["supervised_all"]["miou"] != scores["supervised_third"]["miou"]


def test_the_paired_interval_is_the_difference_in_points_and_its_spread():
    objects = np.array([10.0, 20.0, 5.0, 15.0])
    b = np.stack([0.5 * objects, objects], 1)
    a = np.stack([0.5 * objects + np.array([1.0, 2.0, 0.5, 1.5]), objects], 1)  # +10 points
    out = paired_interval(a, b, resamples=200)
    assert out["points"] == 10.0 and out["p5"] == pytest.approx(10.0) == out["p95"]
    assert paired_interval(b, a, resamples=200)["points"] == -10.0
    uneven = np.stack([0.5 * objects + np.array([4.0, 0.0, 0.0, 0.0]), objects], 1)
    spread = paired_interval(uneven, b, resamples=500)
    assert spread["p5"] < spread["points"] < spread["p95"]
    with pytest.raises(ValueError, match="same tiles"):
        paired_interval(a[:3], b[:3] * np.array([1.0, 2.0]))
