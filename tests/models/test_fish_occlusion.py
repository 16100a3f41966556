"""Two fish under one box, seen from the tracks (issue 28's occlusion rule), on a real
gallery and real tracklets, embeddings made to order."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.records import UNKNOWN
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.occlusion import GROWN, HIDDEN, OVERLAP, MergeRule, covered
from seawatch.models.fish.open_set import WHOLE_FRAME_INHERIT_AGREE, OpenSetDecider
from seawatch.models.fish.tracklets import (
    LINK_SIMILARITY,
    WHOLE_FRAME_LINK_SIMILARITY,
    Place,
    Tracklets,
)

DIM, THRESHOLD, TICK = 32, 0.7, 400_000_000
E = np.eye(DIM, dtype=np.float32)


def test_covered_is_the_share_of_a_box_under_another() -> None:
    assert covered((0, 0, 100, 50), (50, 0, 100, 50)) == 0.5
    assert covered((0, 0, 100, 50), (200, 0, 100, 50)) == 0.0
    assert covered((0, 0, 0, 50), (0, 0, 100, 50)) == 0.0


def test_a_box_over_two_fish_or_much_larger_than_one_is_a_merge() -> None:
    rule = MergeRule(max_growth=1.6)
    nemo, dory = (0, (100, 100, 160, 64)), (0, (180, 120, 160, 64))  # seen in one frame
    assert rule.judge((100, 100, 240, 84), [nemo, dory]) == OVERLAP
    assert rule.judge((105, 100, 160, 64), [nemo, dory]) == ""  # nemo's box, beside dory
    # two tracklets never seen in one frame may be one fish's track broken in two
    broken = [nemo, (TICK, dory[1])]
    assert MergeRule(max_growth=0).judge((100, 100, 240, 84), broken) == ""
    assert rule.judge((100, 90, 200, 100), [nemo]) == GROWN  # 1.95 times its area
    assert rule.judge((100, 100, 170, 70), [nemo]) == ""  # grew a little: one fish
    assert MergeRule().judge((100, 90, 200, 100), [nemo]) == ""  # growth is off by default
    # over a tracked fish but unlike it (links to no tracklet): another fish over it
    assert rule.judge((100, 100, 170, 70), [nemo], links=False) == HIDDEN
    assert MergeRule(hidden=False).judge((100, 100, 170, 70), [nemo], links=False) == ""
    assert rule.judge((400, 300, 160, 64), [nemo, dory], links=False) == ""  # elsewhere
    assert MergeRule(min_cover=0).judge((100, 100, 240, 84), [nemo, dory]) == ""  # off


@pytest.mark.parametrize(("cover", "growth"), [(1.5, 1.6), (-0.1, 1.6), (0.5, 0.9)])
def test_a_bad_merge_rule_fails_naming_its_limits(cover: float, growth: float) -> None:
    with pytest.raises(ValueError, match=r"min_cover in 0\.\.1"):
        MergeRule(cover, growth)


def _seen(camera: str, at_ns: int, box) -> Place:
    """A whole frame's detection (its box may hold two fish)."""
    return Place(camera, at_ns, box, detected=True)


def test_tracklets_predict_where_their_fish_are() -> None:
    tracks = Tracklets(merge_rule=MergeRule(max_growth=0))
    for k in range(2):  # nemo swims right 40 px a frame, dory left, towards each other
        nemo = tracks.link(Place("cam-1", k * TICK, (100 + 40 * k, 100, 160, 64)), E[0])
        tracks.link(Place("cam-1", k * TICK, (420 - 40 * k, 110, 160, 64)), E[1])
    assert nemo.predicted(3 * TICK) == pytest.approx((220, 100, 160, 64))  # 80 px on
    # two frames on, their predicted boxes (220 and 300) lie under one box (230-450)
    assert tracks.merged(_seen("cam-1", 3 * TICK, (230, 100, 220, 80)), E[0]) == OVERLAP
    # a crop with its box (not a detection) holds one fish, however it overlaps
    assert tracks.merged(Place("cam-1", 3 * TICK, (230, 100, 220, 80)), E[0]) == ""
    # where they were last seen (140 and 380), not where they are now, it holds one
    assert tracks.merged(_seen("cam-1", TICK + 1, (230, 100, 220, 80)), E[0]) == ""
    assert tracks.merged(_seen("cam-2", 3 * TICK, (170, 100, 340, 80)), E[0]) == ""  # camera
    assert tracks.merged(Place("cam-1", 3 * TICK, None), E[0]) == ""  # a crop sent alone
    later = 1 * TICK + tracks.gap_ns + 1  # both tracklets closed by then
    assert tracks.merged(_seen("cam-1", later, (100, 100, 480, 80)), E[0]) == ""


def _decide(decider, embedding, k, box, tag):
    source = SightingSource(f"{tag}{k}", k * TICK)
    place = Place("cam-1", k * TICK, box, 500.0, detected=True)
    return decider.decide(embedding[None], [source], [place])[0]


def _between(cosine_a: float, cosine_b: float) -> np.ndarray:
    rest = np.sqrt(1 - cosine_a**2 - cosine_b**2)
    return (cosine_a * E[0] + cosine_b * E[1] + rest * E[5]).astype(np.float32)


@pytest.mark.parametrize("rule_on", [True, False])
def test_a_box_over_two_tracked_fish_is_given_neither(rule_on: bool) -> None:
    gallery = Gallery(DIM)
    gallery.enrol("nemo", E[:1])
    gallery.enrol("dory", E[1:2])
    rule = MergeRule() if rule_on else MergeRule(min_cover=0)
    decider = OpenSetDecider(gallery, THRESHOLD, tracklets=Tracklets(merge_rule=rule))
    for k in range(2):  # nemo and dory side by side, each decided by its tracklet
        assert _decide(decider, E[0], k, (100, 100, 160, 64), "n").individual == "nemo"
        assert _decide(decider, E[1], k, (200, 110, 160, 64), "d").individual == "dory"
    # one box over both: its crop holds both, its embedding between them (0.72 for nemo:
    # over the threshold, under the merge margin; 0.6 for dory)
    both = _between(0.72, 0.6)
    assert THRESHOLD < 0.72 < THRESHOLD + decider.merge_match_margin
    merged = _decide(decider, both, 2, (100, 100, 260, 74), "m")
    if not rule_on:  # linked into nemo's tracklet, it inherits nemo (dory's view, perhaps)
        assert merged.individual == "nemo"
        return
    assert merged.individual == UNKNOWN and not merged.new_individual
    assert decider.merged == 1 and gallery.entry("nemo").n_embeddings == 1
    # far over the threshold a merge is still reported as the fish it matches
    clear = _decide(decider, _between(0.85, 0.3), 3, (100, 100, 260, 74), "c")
    assert clear.individual == "nemo" and decider.merged == 2
    # apart again, each links to its own tracklet
    assert _decide(decider, E[0], 4, (60, 100, 160, 64), "n").individual == "nemo"


class _Counted(Tracklets):
    """Real tracklets that count how often a sighting's fit (its similarity to the open
    tracklets' views) is computed."""

    def __init__(self) -> None:
        super().__init__()
        self.fits = 0

    def _fit(self, tracks, place, embedding):
        self.fits += 1
        return super()._fit(tracks, place, embedding)


def test_a_sightings_fit_is_computed_once_for_the_merge_rule_and_the_link() -> None:
    gallery = Gallery(DIM)
    gallery.enrol("nemo", E[:1])
    gallery.enrol("dory", E[1:2])
    tracks = _Counted()
    decider = OpenSetDecider(gallery, THRESHOLD, tracklets=tracks)
    for k in range(2):
        _decide(decider, E[0], k, (100, 100, 160, 64), "n")
        _decide(decider, E[1], k, (200, 110, 160, 64), "d")
    # over nemo's predicted box and like it: judged (not a merge), then linked to nemo
    assert _decide(decider, E[0], 2, (105, 100, 160, 64), "n").individual == "nemo"
    assert _decide(decider, E[1], 2, (205, 110, 160, 64), "d").individual == "dory"
    assert decider.merged == 0 and tracks.fits == 6  # one fit a sighting, not two
    both = _between(0.72, 0.6)
    assert _decide(decider, both, 3, (100, 100, 270, 74), "m").individual == UNKNOWN
    assert decider.merged == 1 and tracks.fits == 7


def _mix(weights: dict[int, float], rest: int = 9) -> np.ndarray:
    """A unit embedding with the given cosines to the basis vectors (the rest on E[rest])."""
    v = sum(w * E[k] for k, w in weights.items())
    return (v + np.sqrt(1 - sum(w * w for w in weights.values())) * E[rest]).astype(np.float32)


@pytest.mark.parametrize("whole_frames", [True, False])
def test_on_whole_frames_a_look_alike_does_not_join_a_tracked_fishs_tracklet(
    whole_frames: bool,
) -> None:
    # a look-alike that swam into nemo's place: 0.55 to nemo's view, near its box
    link = WHOLE_FRAME_LINK_SIMILARITY if whole_frames else LINK_SIMILARITY
    tracks = Tracklets(link_similarity=link, merge_rule=MergeRule(min_cover=0))
    nemo = tracks.link(_seen("cam-1", 0, (100, 100, 160, 64)), E[0])
    look_alike = _mix({0: 0.55, 1: 0.6})
    joined = tracks.link(_seen("cam-1", TICK, (110, 100, 160, 64)), look_alike)
    assert (joined is nemo) == (not whole_frames)  # crops keep the looser link


@pytest.mark.parametrize("agree", [WHOLE_FRAME_INHERIT_AGREE, 0.0])
def test_a_view_under_the_threshold_unlike_its_tracklet_does_not_inherit_its_fish(
    agree: float,
) -> None:
    gallery = Gallery(DIM)
    gallery.enrol("nemo", E[:1])
    decider = OpenSetDecider(
        gallery,
        THRESHOLD,
        tracklets=Tracklets(link_similarity=WHOLE_FRAME_LINK_SIMILARITY),
        inherit_agree=agree,
    )
    seen = _mix({0: 0.8, 2: 0.6})  # nemo as this camera sees it: 0.8 to the gallery's view
    for k in range(2):
        assert _decide(decider, seen, k, (100 + 10 * k, 100, 160, 64), "n").individual == "nemo"
    # both under the threshold for nemo (0.65, over the inheriting bar 0.59) and linked to
    # the tracklet (cosine over 0.6 to its views): one like them (0.85), one not (0.64)
    like, unlike = _mix({0: 0.65, 2: 0.55}, 10), _mix({0: 0.65, 2: 0.2}, 11)
    assert float(like @ seen) > 0.8 and 0.6 < float(unlike @ seen) < WHOLE_FRAME_INHERIT_AGREE
    assert _decide(decider, like, 2, (120, 100, 160, 64), "l").individual == "nemo"
    answer = _decide(decider, unlike, 3, (130, 100, 160, 64), "u").individual
    assert answer == (UNKNOWN if agree else "nemo")  # another fish linked in: not nemo's
