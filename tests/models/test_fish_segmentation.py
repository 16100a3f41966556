"""Fish bodies in whole frames (issues 27 + 28): the tank scenes' true masks, the
post-processing that cuts touching fish, ``seawatch train fish-segmentation`` on a tiny
plan, and the head's ``detector`` option. Real renders, real ONNX Runtime, no mocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seawatch.cli import cli
from seawatch.contracts.card import load_card
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.task import parse_options
from seawatch.models.fish.detection_score import overlapping_pairs
from seawatch.models.fish.frame_detect import detect_fish
from seawatch.models.fish.frame_segment import (
    TASK,
    FishSegmenter,
    detections_from_maps,
    segment_input,
)
from seawatch.models.fish.options import FishOptions, build_detector
from seawatch.models.fish.segment_train import scene_labels
from seawatch.models.fish.synthetic import make_individuals
from seawatch.models.fish.tank_scene import _relabel, match_boxes, render_scene
from seawatch.models.segmentation.data import targets

FISH = make_individuals(6, 3)


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return (
        int(cols.min()),
        int(rows.min()),
        int(cols.max() - cols.min() + 1),
        int(rows.max() - rows.min() + 1),
    )


def test_a_lone_fish_mask_is_its_outline_and_shows_on_the_image():
    rng = np.random.default_rng(7_100_710)
    scene = render_scene(FISH, rng, n_fish=1, edge_share=0, overlap_share=0)
    mask = scene.mask(0)
    assert _box_of(mask) == scene.fish[0].box
    x, y, w, h = scene.fish[0].box
    assert 0.35 < mask.sum() / (w * h) < 0.8  # a fish fills about 0.59 of its box
    # the mask is where the fish was pasted: it differs from the wall right around it
    gray = scene.image.astype(np.float32).mean(axis=2)
    ring = np.zeros_like(mask)
    ring[max(0, y - 6) : y + h + 6, max(0, x - 6) : x + w + 6] = True
    ring &= ~np.pad(mask, 4)[4:-4, 4:-4] & (scene.labels == 0)
    import cv2

    grown = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    ring &= grown
    wall = np.median(gray[ring])
    assert np.mean(np.abs(gray[mask] - wall) > 8) > 0.6


def test_overlapping_fish_masks_are_disjoint_and_the_covered_one_loses_pixels():
    rng = np.random.default_rng(7_100_711)
    for _ in range(40):
        scene = render_scene(FISH, rng, n_fish=2, edge_share=0, overlap_share=1.0)
        if len(scene.fish) == 2 and scene.fish[0].visible < 0.9:
            break
    else:
        pytest.fail("no covered fish in 40 scenes")
    first, second = scene.mask(0), scene.mask(1)
    assert first.any() and second.any() and not (first & second).any()
    assert _box_of(second) == scene.fish[1].box  # drawn last: all of it shows
    fx, fy, fw, fh = _box_of(first)
    bx, by, bw, bh = scene.fish[0].box
    assert bx <= fx and by <= fy and fx + fw <= bx + bw and fy + fh <= by + bh
    assert set(np.unique(scene.labels)) == {0, 1, 2}
    with pytest.raises(IndexError, match="out of range"):
        scene.mask(2)


def test_labels_index_the_scene_fish_when_a_paste_fell_outside():
    cover = np.array([[0, 1, 3], [3, 3, 0]], np.int16)  # fish 2 never pasted
    assert _relabel(cover, [1, 3]).tolist() == [[0, 1, 2], [2, 2, 0]]


@pytest.mark.parametrize(("core", "merge", "share"), [(0.5, 0.3, 0.9), (0.6, 0.5, 0.8)])
def test_perfect_maps_cut_touching_fish_apart(core, merge, share):
    """The post-processing, given the maps a perfect network would give (the true masks'
    foreground and centre-ness): both fish of a touching pair are found, each its own box
    (pairs where each fish shows at least 80 %; a fish mostly covered shows a part whose box
    is not its outline's). At the plankton levels nearly all; at the served ones (higher, for
    the student's shallower valleys) a few fish lose their thin tail as a piece of its own."""
    rng = np.random.default_rng(7_100_712)
    split = pairs = 0
    for _ in range(60):
        scene = render_scene(FISH, rng, n_fish=2, edge_share=0, overlap_share=1.0)
        if not overlapping_pairs(scene) or min(f.visible for f in scene.fish) < 0.8:
            continue
        fg, centre = targets(scene_labels(scene))
        maps = np.stack([fg.astype(np.float32), centre.astype(np.float32) / 255.0])
        found = detections_from_maps(scene.image, maps, core_level=core, merge_level=merge)
        hit = match_boxes([f.box for f in scene.fish], [d.box for d in found])
        pairs += 1
        split += len(hit) == len(scene.fish)
    assert pairs >= 8
    assert split / pairs >= share


def test_segment_input_is_the_background_difference_at_half_size():
    rng = np.random.default_rng(7_100_713)
    scene = render_scene(FISH, rng, n_fish=2, edge_share=0, overlap_share=0)
    signal = segment_input(scene.image)
    assert signal.shape == (256, 320) and signal.dtype == np.uint8
    small = scene_labels(scene)
    assert np.median(signal[small > 0]) > 4 * np.median(signal[small == 0]) + 10


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("fishseg") / "fish-segmentation"
    result = CliRunner().invoke(cli, ["train", "fish-segmentation", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "student recall" in result.output
    return out


def test_the_command_writes_a_fish_segmentation_artifact(artifact):
    card = load_card(artifact)
    assert card.task == TASK and card.files["quality"] == "quality.onnx"
    assert card.input.preprocessing.endswith("frame_segment.segment_input")
    assert card.training.command.startswith("seawatch train fish-segmentation")
    rows = card.metrics["rows"]
    assert set(rows) == {"threshold", "teacher", "supervised_third", "self_training_quality_kd"}
    assert rows["threshold"]["fish"] == rows["self_training_quality_kd"]["fish"] > 0
    assert card.training.data["pool"]["seed"] == 7_100_700  # development seeds only
    segmenter = FishSegmenter(artifact)
    scene = render_scene(FISH, np.random.default_rng(1), n_fish=2)
    found = segmenter(scene.image)
    assert isinstance(found, list)
    assert segmenter.maps(scene.image).shape == (2, 256, 320)
    assert segmenter(np.zeros((8, 8, 3), np.uint8)) == []
    segmenter.close()


def test_the_detector_option_defaults_to_threshold_and_checks_its_model(tmp_path, artifact):
    assert parse_options(FishOptions, "fish", {}).detector == "threshold"
    assert build_detector(parse_options(FishOptions, "fish", {"whole_frames": True})) is None
    with pytest.raises(ConfigError, match=r"tasks\.fish\.options\.detector"):
        parse_options(FishOptions, "fish", {"detector": "boxes"})
    with pytest.raises(ConfigError, match="set whole_frames: true"):
        parse_options(FishOptions, "fish", {"detector": "model"})
    missing = parse_options(
        FishOptions,
        "fish",
        {"whole_frames": True, "detector": "model", "detector_model_dir": str(tmp_path)},
    )
    with pytest.raises(ConfigError, match=r"detector_model_dir.*train fish-segmentation"):
        build_detector(missing)
    options = {"whole_frames": True, "detector": "model", "detector_model_dir": str(artifact)}
    assert isinstance(build_detector(parse_options(FishOptions, "fish", options)), FishSegmenter)


def test_a_whole_frame_head_cuts_frames_with_the_network_when_given_it(artifact):
    from seawatch.contracts.card import ONNX_FILE
    from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.gallery import Gallery
    from seawatch.models.fish.head import FishIdentifier

    model = Path(__file__).resolve().parents[2] / "models" / "fish"
    card = load_card(model)
    gallery = Gallery.load(model / card.files["gallery"], dim=card.metrics["embedding_dim"])
    segmenter = FishSegmenter(artifact)
    scene = render_scene(FISH, np.random.default_rng(7_100_714), n_fish=3)
    meta = FrameMeta("tank-1", "fish", 1000, FrameKind.FULL, "image/png")
    frame = Frame(meta, SourceRef("frames.fish", 0, 0), b"", 0)
    with OnnxRuntimeBackend(model / ONNX_FILE, threads=1) as backend:
        kw = {"max_batch": 16, "enrol_new": False, "whole_frames": True}
        by_model = FishIdentifier(backend, card, gallery, detector=segmenter, **kw)
        classical = FishIdentifier(backend, card, gallery, **kw)
        got = by_model.prepare(frame, scene.image)
        assert [o.bbox for o in got.objects] == [d.box for d in segmenter(scene.image)]
        want = [d.box for d in detect_fish(scene.image)]
        assert [o.bbox for o in classical.prepare(frame, scene.image).objects] == want
    segmenter.close()
