"""The open-set stream as whole tank frames, and the box matching that scores a detector."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.models.fish.frame_detect import detect_fish
from seawatch.models.fish.open_set_frames import group_frames, open_set_frames
from seawatch.models.fish.open_set_stream import FRAME_H, FRAME_W, open_set_stream
from seawatch.models.fish.tank_scene import match_boxes

SEED = 7100499  # a development seed


@pytest.fixture(scope="module")
def stream():
    return open_set_stream(SEED, sightings=160, known=12, new=4)


@pytest.fixture(scope="module")
def frames(stream):
    return open_set_frames(stream, SEED, edge_share=0.2)


def test_match_boxes_pairs_best_overlap_first_one_to_one():
    truth = [(0, 0, 100, 40), (200, 0, 100, 40)]
    found = [(5, 0, 100, 40), (0, 0, 100, 40), (400, 300, 50, 20)]
    # found 1 is truth 0 exactly; found 0 overlaps truth 0 too but truth 0 is taken
    assert match_boxes(truth, found) == [(0, 1)]


def test_match_boxes_needs_the_overlap_threshold():
    truth = [(0, 0, 100, 40)]
    half = [(50, 0, 100, 40)]  # IoU 1/3
    assert match_boxes(truth, half) == []
    assert match_boxes(truth, half, min_iou=0.3) == [(0, 0)]
    assert match_boxes(truth, [(0, 0, 100, 40)]) == [(0, 0)]
    assert match_boxes([], half) == [] and match_boxes(truth, []) == []


def test_match_boxes_one_box_around_two_fish_matches_at_most_one():
    truth = [(0, 0, 100, 40), (90, 0, 100, 40)]
    merged = [(0, 0, 190, 40)]  # a detector's box around both
    assert len(match_boxes(truth, merged)) <= 1


def test_match_boxes_rejects_a_bad_threshold():
    with pytest.raises(ValueError, match="min_iou"):
        match_boxes([], [], min_iou=0.0)


def test_frames_hold_the_streams_sightings_by_camera_and_time(stream, frames):
    groups = group_frames(stream)
    assert len(frames) == len(groups)
    for frame, group in zip(frames, groups, strict=True):
        assert (frame.camera, frame.captured_at_ns) == (group[0].camera, group[0].captured_at_ns)
        assert frame.image.shape == (FRAME_H, FRAME_W, 3) and frame.image.dtype == np.uint8
        assert 1 <= len(frame.fish) <= 4
        assert [f.truth for f in frame.fish] == [s.truth for s in group][: len(frame.fish)]
        for f in frame.fish:
            x, y, w, h = f.box
            assert x >= 0 and y >= 0 and x + w <= FRAME_W and y + h <= FRAME_H
    fish = [f for frame in frames for f in frame.fish]
    assert len(fish) == len(stream)  # no fish falls wholly outside its frame
    assert any(f.facing_right for f in fish) and not all(f.facing_right for f in fish)
    edge = [f for f in fish if f.edge]
    assert edge and all(f.box[0] == 0 or f.box[0] + f.box[2] == FRAME_W for f in edge)


def test_frames_are_deterministic_in_the_seed(stream, frames):
    again = open_set_frames(stream[:20], SEED, edge_share=0.2)
    assert np.array_equal(again[0].image, frames[0].image)
    assert again[0].fish == frames[0].fish


def test_the_detector_finds_the_clear_fish_of_the_frames(frames):
    clear = hits = matched = right = 0
    for frame in frames:
        detections = detect_fish(frame.image)
        pairs = match_boxes([f.box for f in frame.fish], [d.box for d in detections])
        alone = len(frame.fish) == 1 and not frame.fish[0].poor and not frame.fish[0].edge
        clear += alone
        hits += alone and len(pairs) == 1
        matched += len(pairs)
        right += sum(frame.fish[i].facing_right == detections[j].facing_right for i, j in pairs)
    assert clear >= 10 and hits / clear >= 0.8  # a lone, whole fish is found
    assert right / matched >= 0.75  # most fish found are turned head-left rightly


def test_bad_shares_are_refused(stream):
    with pytest.raises(ValueError, match="edge_share"):
        open_set_frames(stream[:3], SEED, edge_share=1.5)


def test_the_whole_frame_benchmark_runs_through_the_head(tmp_path):
    """A short stream through ``benchmarks/fish_open_set_frames.py`` (the committed model):
    every drawn fish is accounted for, most are found, tracklets raise fewer alerts."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fish_open_set_frames.py"
    out = tmp_path / "frames.json"
    cmd = [
        sys.executable,
        str(script),
        "--seeds",
        str(SEED),
        "--sightings",
        "80",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    single, tracklets = json.loads(out.read_text())["runs"]
    for run in (single, tracklets):
        assert run["fish_drawn"] == 80
        assert run["matched_sightings"] + run["missed"] == 80
        assert run["matched_sightings"] + run["false_detections"] == run["detections"]
        assert run["detection_recall"] >= 0.6 and run["detection_precision"] >= 0.6
    assert tracklets["new_fish_alerts_all"] < single["new_fish_alerts_all"]
    # the occlusion rule lives in the tracklets: each sighting alone never calls a merge
    assert single["merge_detections"] == 0 and tracklets["merge_detections"] >= 0
    # --cache: the second run decides the first's prepared and embedded frames again (the
    # same figures, the first run's render time: nothing rendered again)
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 1
    again = tmp_path / "again.json"
    cmd[cmd.index("--out") + 1] = str(again)
    subprocess.run([*cmd, "--modes", "tracklets"], check=True, capture_output=True, timeout=300)
    (rerun,) = json.loads(again.read_text())["runs"]
    timed = "decide_us_per_sighting"  # measured again
    assert {k: v for k, v in rerun.items() if k != timed} == {
        k: v for k, v in tracklets.items() if k != timed
    }
    assert tracklets["truth_rule"] == "visible"  # the default: what each crop shows
    # --truth outline visible: the same decisions scored both ways (the alerts, which no
    # truth decides, are the same), the outline rule as before round seven
    both = tmp_path / "both.json"
    cmd[cmd.index("--out") + 1] = str(both)
    extra = ["--modes", "tracklets", "--truth", "outline", "visible"]
    subprocess.run([*cmd, *extra], check=True, capture_output=True, timeout=300)
    outline, visible = json.loads(both.read_text())["runs"]
    assert (outline["truth_rule"], visible["truth_rule"]) == ("outline", "visible")
    assert outline["new_fish_alerts_all"] == visible["new_fish_alerts_all"]
    assert visible["matched_sightings"] == tracklets["matched_sightings"]
    assert outline["matched_sightings"] + outline["missed"] == 80
