"""The cheaper segmentation network's options (issue 27's throughput work): SegNet's width,
refinement and in-graph downsampling, ``seawatch train segmentation --rows served`` and the
split levels the card carries to the daemon."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.segment import SegmentParams
from seawatch.ingest.segment_model import CORE_LEVEL, MERGE_LEVEL, instances, objects_from_maps
from seawatch.models.plankton.model_cut import open_cutter
from seawatch.models.segmentation.export import write_split
from seawatch.models.segmentation.network import SegNet, count_parameters
from seawatch.models.segmentation.selftrain import QUICK, SERVED_ROW


@pytest.mark.parametrize(
    ("options", "stride"),
    [
        ({}, 16),
        ({"fine": 0}, 16),
        ({"downsample": 2}, 32),
        ({"fine": 0, "downsample": 2}, 32),
    ],
)
def test_every_shape_of_segnet_gives_maps_of_its_input_size(options, stride):
    net = SegNet((8, 16, 32, 48), **options).eval()
    assert net.stride == stride
    x = torch.rand(2, 1, 2 * stride, 3 * stride) * 60
    with torch.no_grad():
        maps = net(x)
    assert maps.shape == (2, 2, 2 * stride, 3 * stride)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert net.options == {"widths": [8, 16, 32, 48], "downsample": 1, "fine": 8} | options


def test_a_slimmer_segnet_without_refinement_has_fewer_parameters():
    assert count_parameters(SegNet((8, 16, 32, 48), fine=0)) < count_parameters(SegNet()) / 2


@pytest.mark.parametrize(
    "options", [{"widths": (8,)}, {"widths": (8, 0)}, {"fine": -1}, {"downsample": 3}]
)
def test_segnet_refuses_a_shape_it_cannot_build(options):
    with pytest.raises(ValueError, match="SegNet needs"):
        SegNet(**options)


def test_a_plan_of_unknown_rows_is_refused():
    from dataclasses import replace

    with pytest.raises(ValueError, match="rows must be one of"):
        replace(QUICK, rows="some")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("segfast") / "segmentation"
    args = ["train", "segmentation", "--quick", "--out", str(out), "--rows", "served"]
    args += ["--widths", "6,12,24,32", "--fine", "0", "--downsample", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def test_rows_served_trains_only_the_served_students_path(served):
    card = load_card(served)
    assert set(card.metrics["rows"]) == {"threshold", SERVED_ROW}
    assert sorted(p.stem for p in (served / "ablation").glob("*.onnx")) == [
        "self_training_quality_kd",
        "teacher",
    ]
    assert card.training.data["segnet"] == {"widths": [6, 12, 24, 32], "fine": 0, "downsample": 2}
    assert card.thresholds["stride"] == 32.0  # 2 ** 4 levels x 2 (downsampled)
    words = card.training.command.split()
    assert words[words.index("--widths") + 1] == "6,12,24,32" and "--rows" in words
    seg = OnnxRuntimeBackend(served / ONNX_FILE, threads=1)
    maps = seg.run(np.random.default_rng(0).uniform(0, 60, (1, 1, 64, 96)).astype(np.float32))
    assert maps.shape == (1, 2, 64, 96)  # the daemon's contract: maps of the input's size


def test_the_daemon_cuts_at_the_split_levels_written_into_the_card(served):
    card = load_card(served)
    assert (card.thresholds["core"], card.thresholds["merge"]) == (CORE_LEVEL, MERGE_LEVEL)
    write_split(served, 0.55, 0.45, {"seed": 7_100_213, "command": "a sweep"})
    card = load_card(served)
    assert (card.thresholds["core"], card.thresholds["merge"]) == (0.55, 0.45)
    assert card.metrics["split_levels"]["seed"] == 7_100_213 and SERVED_ROW in card.metrics["rows"]
    cutter = open_cutter(
        served, SegmentParams(), threads=1, classifier_size=64, max_batch=4, review_below=0.6
    )
    try:
        assert (cutter.core_level, cutter.merge_level) == (0.55, 0.45)
        assert cutter.stride == 32
    finally:
        cutter.close()
    with pytest.raises(ValueError, match="0 < merge < core < 1"):
        write_split(served, 0.4, 0.5, {})


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--widths", "8"], "two or more comma-separated channel counts"),
        (["--widths", "8,x"], "two or more comma-separated channel counts"),
        (["--downsample", "3"], "'3' is not one of"),
    ],
)
def test_bad_network_or_split_options_are_refused_before_training(tmp_path, args, words):
    result = CliRunner().invoke(
        cli, ["train", "segmentation", "--quick", "--out", str(tmp_path / "m"), *args]
    )
    assert result.exit_code == 2 and words in result.output
    assert not (tmp_path / "m").exists()


def test_a_higher_merge_level_splits_touching_objects_whose_valley_is_shallower():
    maps = np.zeros((2, 40, 60), np.float32)
    yy, xx = np.mgrid[0:40, 0:60]
    for cx in (20, 36):  # two overlapping discs, each with its own centre-ness peak
        d = np.sqrt((xx - cx) ** 2 + (yy - 20) ** 2)
        maps[0][d <= 9] = 0.95
        maps[1][d <= 9] = np.maximum(maps[1][d <= 9], 1.0 - d[d <= 9] / 9)
    maps[1, 14:27, 27:30] = np.maximum(maps[1, 14:27, 27:30], 0.36)  # the valley at 0.36
    assert instances(maps, core_level=0.5, merge_level=0.3).max() == 1  # merged
    assert instances(maps, core_level=0.5, merge_level=0.4).max() == 2  # split
    gray = np.full((80, 120), 200, np.uint8)  # the daemon's objects follow the levels
    for merge, count in ((0.3, 1), (0.4, 2)):
        objects, _, _ = objects_from_maps(
            gray, maps, SegmentParams(), None, core_level=0.5, merge_level=merge
        )
        assert len(objects) == count
