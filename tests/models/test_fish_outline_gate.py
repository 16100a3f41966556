"""The whole-frame outline gate (issue 28): one rendered fish passes, two touching fish
found as one outline and a fish's strip found alone are poor, and a poor detection's view
has quality 0 for the head (matched, never enrolled, never alerting alone)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.contracts.task import PreparedFrame, TaskInputs
from seawatch.models.fish.frame_detect import detect_fish
from seawatch.models.fish.head import fish_input8
from seawatch.models.fish.outline_gate import (
    EDGE,
    MERGED,
    SMALL,
    TURN,
    OutlineGate,
    judge_outline,
    measure_outline,
)
from seawatch.models.fish.sighting_inputs import place as place_of
from seawatch.models.fish.synthetic import _fish_layer, make_individual
from seawatch.models.fish.tank_scene import iou, render_scene
from seawatch.models.fish.whole_frames import whole_frame_inputs


def _frame_with(fish: list[tuple[int, int, int]]) -> np.ndarray:
    """A plain tank wall with each (seed, x, y) fish pasted on it, 160 x 64 px each."""
    image = np.full((480, 640, 3), 200, np.float32)
    for seed, x, y in fish:
        individual, rng = make_individual(seed, 0), np.random.default_rng(seed)
        colour, alpha, _ = _fish_layer(individual, rng, 64, 160)
        region = image[y : y + 64, x : x + 160]
        region[:] = colour * 255 + region * (1 - alpha[..., None])
    return image.clip(0, 255).astype(np.uint8)


def test_most_fish_found_alone_are_one_fish() -> None:
    fish = [make_individual(i, 0) for i in range(40)]
    rng = np.random.default_rng(0)
    verdicts = []
    for individual in fish:
        scene = render_scene([individual], rng, n_fish=1, edge_share=0, overlap_share=0)
        best = max(detect_fish(scene.image), key=lambda d: iou(d.box, scene.fish[0].box))
        assert best.outline is not None
        verdicts.append(OutlineGate().judge(best.outline))
    # some poses of one fish fall outside the limits (their views are then merely unused)
    assert verdicts.count("") >= 32, verdicts


@pytest.mark.parametrize(
    "pair",
    [
        [(5, 300, 300), (6, 420, 310)],  # end to end, overlapping
        [(7, 300, 300), (8, 400, 290)],
    ],
)
def test_two_touching_fish_found_as_one_outline_are_merged(pair) -> None:
    (found,) = detect_fish(_frame_with(pair))
    assert found.outline is not None
    assert OutlineGate().judge(found.outline) == MERGED, found.outline


def test_a_fish_s_strip_found_alone_is_small() -> None:
    (found,) = detect_fish(_frame_with([(3, 200, 200)]))
    _, _, w, h = found.box
    strip = np.ones((h // 2, w // 2), bool)  # a strip half the fish's length
    assert found.outline is not None and OutlineGate().judge(found.outline) == ""
    assert judge_outline(strip) == SMALL
    assert judge_outline(strip, scale=2) != SMALL  # found at half size: as long as the fish


def test_the_gate_s_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="min_aspect < max_aspect"):
        OutlineGate(min_aspect=5.0, max_aspect=2.0)
    with pytest.raises(ValueError, match="non-empty 2-d outline"):
        measure_outline(np.zeros((4, 4), bool))


def _prepared(image: np.ndarray) -> PreparedFrame:
    meta = FrameMeta("tank-1", "fish", 1000, FrameKind.FULL, "image/png")
    frame = Frame(meta, SourceRef("frames.fish", 0, 0), b"", 0)
    inputs = whole_frame_inputs(image, lambda c: fish_input8(c, 64, 160), keep_views=False)
    return PreparedFrame.of(frame, inputs, 0.0)


def test_a_merged_detection_s_view_has_quality_zero_a_lone_fish_s_does_not() -> None:
    image = _frame_with([(4, 40, 40), (5, 300, 300), (6, 420, 310)])  # one alone, two touching
    found = detect_fish(image)
    assert len(found) == 2, [d.box for d in found]
    prepared = _prepared(image)
    alone, both = sorted(range(2), key=lambda k: prepared.objects[k].bbox[2])
    assert prepared.objects[alone].poor == "" and prepared.objects[both].poor == MERGED
    assert place_of(prepared, alone).quality > 80.0  # the head's min_quality
    assert place_of(prepared, both).quality == 0.0


def test_an_outline_with_no_deeper_end_leaves_its_turn_a_guess() -> None:
    spindle = np.zeros((40, 140), np.uint8)  # as deep at both ends: which is the head?
    cv2.ellipse(spindle, (70, 20), (69, 19), 0, 0, 360, 1, -1)
    assert judge_outline(spindle.astype(bool)) == TURN
    (found,) = detect_fish(_frame_with([(3, 200, 200)]))  # a fish: deeper at the head
    assert found.outline is not None and found.outline.ends >= OutlineGate().min_ends


def test_the_deeper_end_of_an_outline_is_its_head() -> None:
    """``head_right``: the head is the deeper third (the tail ends in the thin peduncle)."""
    body = np.zeros((40, 140), np.uint8)
    cv2.ellipse(body, (95, 20), (44, 19), 0, 0, 360, 1, -1)  # the head, on the right
    cv2.rectangle(body, (5, 16), (55, 24), 1, -1)  # the tail: thin
    assert measure_outline(body.astype(bool)).head_right
    assert not measure_outline(body[:, ::-1].astype(bool)).head_right
    even = np.ones((40, 140), bool)  # no deeper end: not turned
    assert not measure_outline(even).head_right


def test_a_fish_cut_by_the_frame_s_border_is_poor() -> None:
    frame = _frame_with([(3, 40, 200)])
    inside = _prepared(np.ascontiguousarray(frame[:, 20:]))
    cut = _prepared(np.ascontiguousarray(frame[:, 100:]))  # the fish's head third is outside
    assert [o.poor for o in inside.objects] == [""]
    assert [o.poor for o in cut.objects] == [EDGE]
    assert place_of(cut, 0).quality == 0.0


def test_a_whole_frame_s_fish_is_a_detection_a_crop_is_not() -> None:
    """The occlusion rule (occlusion.py) judges detections only: a crop holds one fish."""
    prepared = _prepared(_frame_with([(4, 40, 40), (5, 300, 300)]))
    assert [place_of(prepared, k).detected for k in range(2)] == [True, True]
    assert place_of(prepared, 0).box == prepared.objects[0].bbox
    crop = PreparedFrame.of(prepared.frame, TaskInputs([prepared.crops[0]]), 0.0)
    seen = place_of(crop, 0)
    assert not seen.detected and seen.box is None
