"""Classifier training data cut by the segmentation model (issue 27): the taxon rule, the
crops from the committed network, the splits and the command's refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seawatch.contracts.errors import ConfigError
from seawatch.models.plankton.model_segmented import (
    check_segmentation_model,
    model_segmented_dataset,
    taxa_of,
)
from seawatch.models.plankton.synthetic import TAXA
from seawatch.models.plankton.synthetic_sets import SOURCES, synthetic_split

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "segmentation"


def _model() -> Path:
    if not (MODEL / "model.onnx").is_file():
        pytest.skip(f"{MODEL} is not in this checkout")
    return MODEL


def test_a_cut_object_takes_the_taxon_of_the_true_object_covering_most_of_it() -> None:
    truth = np.zeros((40, 40), np.int32)
    truth[0:10, 0:10] = 1  # a copepod
    truth[20:30, 20:30] = 2  # a radiolarian
    truth[0:10, 30:40] = 3  # a fibre
    pred = np.zeros((40, 40), np.int32)
    pred[0:10, 0:12] = 1  # mostly on the copepod (100 of 120 px)
    pred[20:30, 14:30] = 2  # 100 of 160 px on the radiolarian
    pred[34:40, 0:20] = 3  # on no true object
    pred[6:16, 30:40] = 4  # 40 of 100 px on the fibre: under half
    pred[5:15, 20:30] = 5  # on no true object
    got = taxa_of(pred, truth, ["copepod", "radiolarian", "fiber"])
    assert got == [TAXA.index("copepod"), TAXA.index("radiolarian"), None, None, None]


def test_the_committed_network_cuts_labelled_crops_reproducibly() -> None:
    counts: dict[str, int] = {}
    x, y = model_segmented_dataset(2, 11, _model(), size=64, counts=counts)
    again, y_again = model_segmented_dataset(2, 11, _model(), size=64)
    assert x.dtype == np.uint8 and x.shape[1:] == (64, 64) and len(x) == len(y) > 10
    assert np.array_equal(x, again) and np.array_equal(y, y_again)
    assert set(y.tolist()) <= set(range(len(TAXA)))
    assert counts["frames"] == 2 and counts["kept"] == len(y)
    assert counts["kept"] + counts["on_no_true_object"] == counts["cut"]
    # most of what the network cuts lies on a true object (it is a segmentation, not noise)
    assert counts["kept"] >= 0.8 * counts["truth_objects"]


def test_the_crops_are_cut_at_the_split_levels_of_the_networks_card(tmp_path: Path) -> None:
    """The classifier learns from the objects the daemon would cut: the card's levels."""
    import json
    import shutil

    copy = tmp_path / "segmentation"
    shutil.copytree(_model(), copy)
    card = json.loads((copy / "card.json").read_text())
    card["thresholds"] |= {"core": 0.05, "merge": 0.02}  # a core wherever there is centre-ness
    (copy / "card.json").write_text(json.dumps(card))
    served: dict[str, int] = {}
    loose: dict[str, int] = {}
    model_segmented_dataset(3, 11, _model(), size=32, counts=served)
    model_segmented_dataset(3, 11, copy, size=32, counts=loose)
    assert served["truth_objects"] == loose["truth_objects"]  # the same frames
    assert served["cut"] != loose["cut"]


def test_a_split_gains_a_model_segmented_source_only_with_a_model() -> None:
    plain, _ = synthetic_split("validation", 6, seed=3, size=32, segmented_share=0.4)
    counts: dict[str, int] = {}
    mixed, _ = synthetic_split(
        "validation",
        6,
        seed=3,
        size=32,
        segmented_share=0.4,
        segmentation_model=_model(),
        model_segmented_share=0.5,
        model_counts=counts,
    )
    assert plain.sources == SOURCES[:2] and mixed.sources == SOURCES
    n_model = int((mixed.source == 2).sum())
    assert n_model == counts["kept"] > 0
    # the ROIs and threshold cuts are the same draws with or without the model's crops
    assert np.array_equal(mixed.images[: len(plain.labels)], plain.images)
    assert len(mixed.labels) == len(plain.labels) + n_model


def test_a_missing_segmentation_model_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seawatch train segmentation --out"):
        check_segmentation_model(tmp_path)


def test_the_train_command_refuses_a_segmentation_model_with_user_data(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from seawatch.models.plankton.command import train_command

    result = CliRunner().invoke(
        train_command,
        ["--data-dir", str(tmp_path), "--segmentation-model", str(tmp_path), "--out", "x"],
    )
    assert result.exit_code != 0
    assert "--segmentation-model goes with the synthetic generator" in result.output


def test_a_card_names_the_network_its_model_cut_crops_come_from() -> None:
    from seawatch.models.plankton.synthetic_sets import model_segmented_args

    assert model_segmented_args({"segmented_share": 0.4}) == {}
    used = {"model_segmented": {"model_dir": "models/segmentation", "share": 0.3}}
    assert model_segmented_args(used) == {
        "segmentation_model": Path("models/segmentation"),
        "model_segmented_share": 0.3,
    }
