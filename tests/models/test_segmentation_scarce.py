"""The scarce-label experiment's plumbing (``benchmarks/segmentation_scarce.py``): every row
fitted, kept on disk and loaded back under its own name, and the two mIoU criteria read
from the right rows."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from seawatch.models.segmentation.data import make_tiles
from seawatch.models.segmentation.scarce import (
    fit_rows,
    gains,
    load_rows,
    save_rows,
    score_rows,
)
from seawatch.models.segmentation.selftrain import QUICK, ROWS


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
