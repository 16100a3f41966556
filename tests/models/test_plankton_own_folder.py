"""Training on a user's own folder that fits the data: the input (colour, size) chosen from
the images, the gray backbone inflated to colour, K-fold cross-validation of small sets, and
a 96 px colour model served through the head."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

import torch

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.preprocess import nchw, prepare_crop
from seawatch.models.plankton.backbone import save_backbone
from seawatch.models.plankton.crossval import fold_ids, folds_for
from seawatch.models.plankton.input_choice import (
    channel_spread,
    choose_channels,
    choose_size,
    look_at,
)
from seawatch.models.plankton.network import PlanktonNet
from seawatch.models.plankton.pretrained import load_backbone
from seawatch.models.plankton.train import FitParams, PlanktonData, train_plankton
from tests.models.user_folders import tint, write_folder

pytestmark = pytest.mark.train

HUES = {"reddish": ("copepod", -1.0), "bluish": ("copepod", 1.0)}  # same shapes, hue only


def _paths(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def test_the_input_is_chosen_from_the_images(tmp_path):
    gray = write_folder(tmp_path / "gray", HUES, 4, seed=0, side=100)
    colour = write_folder(tmp_path / "colour", HUES, 4, seed=0, side=40, colour=True)
    as_bgr = tmp_path / "bgr" / "a"
    as_bgr.mkdir(parents=True)
    for i, path in enumerate(_paths(gray)):  # gray stored as 3-channel JPEG: still gray
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(as_bgr / f"{i}.jpg"), image)
    look_gray, look_colour = look_at(_paths(gray)), look_at(_paths(colour))
    look_bgr = look_at(sorted(as_bgr.glob("*.jpg")))
    assert look_gray.colour_share == 0 and look_bgr.colour_share == 0
    assert look_colour.colour_share == 1 and 36 <= look_colour.side_median <= 44
    assert choose_channels(look_gray) == 1 and choose_channels(look_bgr) == 1
    assert choose_channels(look_colour) == 3 and choose_channels(look_colour, "gray") == 1
    assert choose_size(look_gray) == 96 and choose_size(look_colour) == 64
    assert choose_size(look_colour, 128) == 128 and choose_size(None) == 64
    assert choose_channels(None) == 1  # a card without the choice: 64 px gray
    with pytest.raises(ConfigError, match=r"--input-size 100 is not one of \[64, 96, 128\]"):
        choose_size(look_gray, 100)
    assert channel_spread(np.zeros((4, 4), np.uint8)) == 0.0


def test_the_committed_model_is_still_64_px_gray(model_dir):
    card = load_card(model_dir)
    assert (card.input.size, card.input.channels) == (64, 1)


def test_the_hidden_tint_changes_colour_but_not_gray():
    roi = np.full((40, 40), 230, np.uint8)
    roi[10:30, 10:30] = 60
    a, b = tint(roi, -1.0), tint(roi, 1.0)
    gray_a, gray_b = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(int) for x in (a, b))
    assert np.abs(gray_a - gray_b).max() <= 1  # identical to a gray model
    assert np.abs(a.astype(int) - b.astype(int)).max() > 40  # different to a colour one


def test_the_gray_stem_is_inflated_to_colour_and_sees_gray_the_same():
    gray_net = PlanktonNet(4)
    start = save_backbone(gray_net, Path(tempfile.mkdtemp()), {"t": 1})
    colour_net = PlanktonNet(3, in_channels=3)
    loaded = load_backbone(colour_net, start)
    assert loaded["inflated_to_colour"] == ["stem.0.weight"]
    torch.testing.assert_close(colour_net.stem[0].weight.sum(1), gray_net.stem[0].weight[:, 0])
    x = torch.rand(2, 1, 64, 64) * 255
    gray_net.eval(), colour_net.eval()
    with torch.no_grad():
        torch.testing.assert_close(gray_net.features(x), colour_net.features(x.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError, match="in_channels must be 1"):
        PlanktonNet(3, in_channels=2)


def test_small_sets_are_cross_validated_and_the_folds_are_stratified():
    assert folds_for([12, 40], None, has_validation=False) == 5
    assert folds_for([3, 40], None, has_validation=False) == 3
    assert folds_for([30, 40], None, has_validation=False) == 0  # large enough: a split
    assert folds_for([12, 40], None, has_validation=True) == 0  # the user's validation
    assert folds_for([12, 40], 0, has_validation=False) == 0
    assert folds_for([50, 40], 4, has_validation=False) == 4
    with pytest.raises(ConfigError, match="smallest class has 3 images"):
        folds_for([3, 40], 4, has_validation=False)
    with pytest.raises(ConfigError, match="drop --val-dir or --folds"):
        folds_for([12, 40], 3, has_validation=True)
    labels = np.repeat([0, 1, 2], [7, 12, 5])
    ids = fold_ids(labels, 5, seed=0)
    for cls in range(3):
        counts = np.bincount(ids[labels == cls], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.min() >= 1


def test_a_colour_only_difference_is_learned_by_rgb_and_not_by_gray(tmp_path):
    """Two classes of the same shapes that differ in hue only (gray levels equal): the
    auto-detected colour model tells them apart on the test folder, the gray one cannot."""
    train = write_folder(tmp_path / "train", HUES, 16, seed=1, side=60, colour=True)
    val = write_folder(tmp_path / "val", HUES, 8, seed=2, side=60, colour=True)
    test = write_folder(tmp_path / "test", HUES, 8, seed=3, side=60, colour=True)
    params = FitParams(epochs=15, batch_size=16, adaptive=False, finetune="full")
    scores = {}
    for colour in ("auto", "gray"):
        card = train_plankton(
            tmp_path / colour,
            data=PlanktonData(data_dir=train, val_dir=val, test_dir=test, colour=colour),
            params=params,
            device="cpu",
            command="test",
        )
        scores[colour] = (card.input.channels, card.metrics["macro_f1"])
    assert scores["auto"][0] == 3 and scores["gray"][0] == 1
    assert scores["auto"][1] >= 0.9, scores
    assert scores["gray"][1] <= 0.75, scores


def test_a_small_folder_reports_k_folds_then_trains_on_everything(tmp_path):
    from click.testing import CliRunner

    from seawatch.cli import cli

    classes = {
        "copepod": ("copepod", 0.0),
        "diatom": ("diatom_chain", 0.0),
        "bubble": ("bubble", 0.0),
    }
    folder = write_folder(tmp_path / "data", classes, 6, seed=4)
    start = save_backbone(PlanktonNet(5), tmp_path / "bb", {"model": "t"})
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["train", "plankton", "--data-dir", str(folder), "--out", str(out), "--folds", "3",
         "--finetune", "linear", "--epochs", "2", "--batch-size", "8",
         "--pretrained", str(start), "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3-fold cross-validation: macro_f1=" in result.output
    card = load_card(out)
    cv = card.metrics["cross_validation"]
    folds = cv["per_fold"]
    assert cv["folds"] == 3 and len(folds) == 3 and sum(f["n"] for f in folds) == 18
    f1 = [f["macro_f1"] for f in folds]
    assert cv["macro_f1_mean"] == pytest.approx(np.mean(f1), abs=1e-4)
    assert cv["macro_f1_std"] == pytest.approx(np.std(f1, ddof=1), abs=1e-4)
    assert set(cv["f1_per_class"]) == set(classes)
    data = card.training.data
    assert data["train"]["total"] == 18 and "test" not in data and "validation" not in data
    assert "3-fold" in data["split"]["validation"]
    assert card.metrics["split"].startswith("out-of-fold") and card.metrics["n"] == 18
    assert card.metrics["fine_tuning"]["mode"] == "linear"
    assert (out / "confusion.png").stat().st_size > 1000
    bad = CliRunner().invoke(
        cli, ["train", "plankton", "--data-dir", str(folder), "--out", str(out), "--folds", "9"]
    )
    assert bad.exit_code != 0 and "--folds 6 or fewer" in bad.output


def test_a_96_px_colour_model_is_served_through_the_head(tmp_path):
    """The folder's 96 px colour crops give a 96 px, 3-channel card and graph; the plug-in
    loads it from the settings, decodes a colour PNG frame as the daemon does and classifies
    it with the same numbers as the graph run on the training path's preprocessing."""
    from seawatch.config import load_settings
    from seawatch.contracts.frames import Frame, SourceRef, parse_headers
    from seawatch.contracts.task import PreparedFrame
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.ingest.decode import decode_image
    from seawatch.ingest.image_headers import DecodeLimits
    from seawatch.models.plankton.export import ort_session
    from seawatch.models.plankton.head import PLUGIN

    folder = write_folder(tmp_path / "data", HUES, 6, seed=5, side=96, colour=True)
    out = tmp_path / "model"
    card = train_plankton(
        out,
        data=PlanktonData(data_dir=folder, folds=0),
        params=FitParams(epochs=1, batch_size=8, adaptive=False, finetune="full"),
        device="cpu",
        command="test",
    )
    assert (card.input.size, card.input.channels) == (96, 3)
    assert card.training.data["input"]["size_rule"].startswith("nearest")
    (graph_input,) = ort_session(out / ONNX_FILE).get_inputs()
    assert tuple(graph_input.shape[1:]) == (3, 96, 96)
    settings = load_settings(
        tasks={"plankton": {"model_dir": str(out)}},
        storage__local__path=str(tmp_path / "store.db"),
    )
    head = PLUGIN.load(settings.tasks["plankton"], settings)
    path = sorted((folder / "bluish").glob("*.png"))[0]
    payload = path.read_bytes()
    headers = [
        ("content-type", b"image/png"),
        ("instrument", b"flowcam-rgb"),
        ("captured-at", b"2026-06-01T12:00:00Z"),
        ("frame-kind", b"roi"),
    ]
    meta = parse_headers(
        headers, topic="frames.plankton", key=b"flowcam-rgb", now_ns=time.time_ns()
    )
    frame = Frame(meta, SourceRef("frames.plankton", 0, 0), payload, 0, headers)
    image = decode_image(payload, "image/png", DecodeLimits())
    prepared = [PreparedFrame.of(frame, head.prepare(frame, image), 1.0)]
    tensor = head.stack(prepared)
    assert tensor.shape == (1, 3, 96, 96)
    outputs = head.infer(tensor)
    (result,) = head.finish(prepared, outputs, 1.0)
    assert len(result.objects) == 1
    backend = OnnxRuntimeBackend(out / ONNX_FILE, threads=1)
    expected = backend.run(nchw(prepare_crop(cv2.imread(str(path)), 96, 3)[None]))
    backend.close()
    np.testing.assert_allclose(outputs.probs, expected, atol=1e-5)
    head.close()


def test_cross_validation_with_a_test_folder_scores_the_final_model_on_it(tmp_path):
    classes = {name: (name, 0.0) for name in ("copepod", "bubble")}
    folder = write_folder(tmp_path / "data", classes, 4, seed=6)
    test = write_folder(tmp_path / "test", classes, 3, seed=7)
    card = train_plankton(
        tmp_path / "out",
        data=PlanktonData(data_dir=folder, test_dir=test, folds=2),
        params=FitParams(epochs=1, batch_size=8, adaptive=False, finetune="full"),
        device="cpu",
        command="test",
    )
    assert card.metrics["cross_validation"]["folds"] == 2
    assert card.metrics["split"].startswith("test") and card.metrics["n"] == 6
    assert card.training.data["train"]["total"] == 8  # every training image, none split off
