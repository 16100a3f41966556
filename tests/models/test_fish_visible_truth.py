"""Truth by what a crop shows: a found box is the drawn fish whose visible pixels it holds."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.fish.open_set_frames import open_set_frames
from seawatch.models.fish.open_set_stream import open_set_stream
from seawatch.models.fish.synthetic import make_individual
from seawatch.models.fish.tank_scene import iou, match_boxes, render_scene
from seawatch.models.fish.visible_truth import match_visible, shown_of

SEED = 7100498  # a development seed
H, W = 240, 400


def _paint(boxes: list[tuple[int, int, int, int]], shape: str = "ellipse") -> np.ndarray:
    """A label image with a fish-like ellipse (or a full rectangle) in each box, drawn in
    order: a later fish hides an earlier one where they overlap."""
    labels = np.zeros((H, W), np.int32)
    ys, xs = np.mgrid[0:H, 0:W]
    for i, (x, y, w, h) in enumerate(boxes):
        if shape == "ellipse":
            cx, cy = x + (w - 1) / 2, y + (h - 1) / 2
            inside = ((xs - cx) / (w / 2)) ** 2 + ((ys - cy) / (h / 2)) ** 2 <= 1
        else:
            inside = (xs >= x) & (xs < x + w) & (ys >= y) & (ys < y + h)
        labels[inside] = i + 1
    return labels


def _outlines(boxes: list[tuple[int, int, int, int]], shape: str = "ellipse") -> list:
    """Each fish's outline box as drawn alone (hidden part included), from its own mask."""
    return [shown_of(_paint([b], shape), 1)[0].box for b in boxes]


def test_two_overlapping_fish_the_box_goes_to_the_one_in_front():
    boxes = [(100, 100, 200, 80), (110, 104, 200, 80)]  # fish 1 drawn over fish 0
    found = [(100, 100, 204, 82)]  # one box over both, nearer fish 0's outline
    # the old rule gives the box to the fish behind, of which the crop shows a rim
    assert match_boxes(_outlines(boxes), found) == [(0, 0)]
    assert match_visible(shown_of(_paint(boxes), 2), found) == [(1, 0)]


def test_a_fish_hidden_ninety_percent_does_not_take_its_own_outline_box():
    boxes = [(100, 100, 100, 40), (92, 96, 122, 48)]  # fish 1 covers most of fish 0
    labels = _paint(boxes)
    alone = _paint(boxes[:1])
    shown = shown_of(labels, 2)
    assert shown[0].pixels / (alone == 1).sum() <= 0.1  # fish 0 shows at most 10 %
    found = [boxes[0]]  # a box exactly on fish 0's outline
    assert match_boxes(_outlines(boxes), found) == [(0, 0)]  # the old rule: fish 0
    pairs = match_visible(shown, found)
    assert all(i != 0 for i, _ in pairs)
    assert pairs == [(1, 0)]  # the crop shows fish 1, at IoU 0.5 or more with it


def test_a_fish_hidden_in_its_middle_does_not_take_the_box_by_its_ends():
    boxes = [(100, 100, 200, 60), (115, 92, 170, 76)]  # fish 1 over fish 0's middle
    shown = shown_of(_paint(boxes), 2)
    alone = _paint(boxes[:1])
    assert shown[0].pixels / (alone == 1).sum() <= 0.1  # fish 0 shows at most 10 %
    found = [boxes[0]]
    # fish 0's head and tail still span its box: by the boxes alone it fits fish 0 better
    assert iou(shown[0].box, found[0]) > iou(shown[1].box, found[0]) >= 0.5
    assert match_boxes(_outlines(boxes), found) == [(0, 0)]
    assert match_visible(shown, found) == [(1, 0)]  # but the crop shows fish 1


def test_a_partly_hidden_fish_keeps_a_box_on_what_shows_of_it():
    boxes = [(100, 100, 200, 80), (200, 90, 160, 100)]  # fish 1 over fish 0's right half
    shown = shown_of(_paint(boxes), 2)
    found = [shown[0].box, shown[1].box]
    assert match_visible(shown, found) == [(0, 0), (1, 1)]


def test_one_box_per_fish_and_a_box_on_the_wall_is_false():
    boxes = [(20, 20, 120, 48), (200, 120, 140, 56)]
    shown = shown_of(_paint(boxes), 2)
    found = [(22, 20, 118, 48), (20, 20, 120, 48), (300, 10, 60, 24)]
    # found 1 shows fish 0 best (IoU 1 with its box); found 0 is left over, found 2 on the wall
    assert match_visible(shown, found) == [(0, 1)]
    assert match_visible(shown, []) == [] and match_visible([], found) == []


def test_a_tie_goes_to_the_fish_in_front():
    boxes = [(0, 0, 100, 40), (100, 0, 100, 40)]
    shown = shown_of(_paint(boxes, "rect"), 2)
    found = [(0, 0, 200, 40)]  # half of each: same share, same IoU
    assert match_visible(shown, found, min_iou=0.5) == [(1, 0)]


def test_bad_thresholds_and_labels_are_refused():
    with pytest.raises(ValueError, match="min_share"):
        match_visible([], [], min_share=0.0)
    with pytest.raises(ValueError, match="min_iou"):
        match_visible([], [], min_iou=1.5)
    with pytest.raises(ValueError, match="2-D"):
        shown_of(np.zeros((4, 4, 3), np.int32), 1)


def test_shown_pixels_of_a_rendered_scene_are_its_masks():
    rng = np.random.default_rng(SEED)
    individuals = [make_individual(i, SEED) for i in range(4)]
    scene = render_scene(individuals, rng, n_fish=4, overlap_share=0.9)
    for i, s in enumerate(shown_of(scene.labels, len(scene.fish))):
        x, y, w, h = s.box
        mask = np.zeros_like(scene.labels, bool)
        mask[y : y + h, x : x + w] = s.mask
        assert np.array_equal(mask, scene.mask(i))


def test_stream_frames_keep_each_fishs_visible_pixels():
    stream = open_set_stream(SEED, sightings=60, known=8, new=3)
    frames = open_set_frames(stream, SEED, edge_share=0.2)
    covered = 0
    for frame in frames:
        for f in frame.fish:
            x, y, w, h = f.box
            sx, sy, sw, sh = f.shown.box
            assert f.shown.pixels > 0
            assert x <= sx and y <= sy and sx + sw <= x + w and sy + sh <= y + h
            assert f.shown.mask.shape == (sh, sw)
            covered += f.visible < 0.95
        found = [f.shown.box for f in frame.fish]  # a box on what shows of each fish
        hidden = [k for k, f in enumerate(frame.fish) if f.visible < 0.3]
        pairs = match_visible([f.shown for f in frame.fish], found)
        assert all(i == j for i, j in pairs)
        assert len(pairs) >= len(frame.fish) - len(hidden)
    assert covered > 0  # some fish are partly hidden
