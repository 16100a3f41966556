"""The synthetic plankton generator: shapes, polarity, frequencies, full frames, segmented sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seawatch.contracts.preprocess import border_level
from seawatch.models.plankton._segmented import match_objects, tight_boxes
from seawatch.models.plankton._taxa import RENDERERS
from seawatch.models.plankton.synthetic import (
    MAX_SIDE,
    MIN_SIDE,
    TAXA,
    TAXON_FREQUENCIES,
    make_dataset,
    make_segmented_dataset,
    render_full_frame,
    render_roi,
    sample_taxa,
)


def test_taxa_are_complete_and_consistent() -> None:
    assert len(TAXA) >= 10
    assert set(TAXA) == set(TAXON_FREQUENCIES) == set(RENDERERS)


@pytest.mark.parametrize("taxon", TAXA)
def test_every_taxon_renders_a_bounded_uint8_crop(taxon: str) -> None:
    rng = np.random.default_rng(7)
    for i in range(12):
        roi = render_roi(taxon, rng, dark_field=i % 3 == 0)
        assert roi.dtype == np.uint8
        assert roi.ndim == 2
        assert min(roi.shape) >= MIN_SIDE and max(roi.shape) <= MAX_SIDE
        assert int(roi.max()) - int(roi.min()) > 30, "the object must stand out"


@pytest.mark.parametrize("taxon", TAXA)
def test_bright_field_is_light_and_dark_field_is_dark(taxon: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        assert border_level(render_roi(taxon, rng)) > 150
        dark = render_roi(taxon, rng, dark_field=True)
        assert border_level(dark) < 50
        assert dark.max() > border_level(dark) + 30, "a dark-field object is bright"


def test_unknown_taxon_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown taxon 'kraken'"):
        render_roi("kraken", np.random.default_rng(0))


def test_frequencies_are_skewed_and_sum_to_one() -> None:
    values = sorted(TAXON_FREQUENCIES.values(), reverse=True)
    assert math.isclose(sum(values), 1.0)
    assert all(v > 0 for v in values)
    assert sum(values[:3]) > 0.5, "a few taxa dominate"
    assert values[0] / values[-1] >= 10, "and some are rare"


def test_sample_taxa_follows_frequencies_or_balance() -> None:
    skewed = sample_taxa(np.random.default_rng(1), 5000)
    assert skewed.count("detritus") > 10 * skewed.count("radiolarian")
    balanced = sample_taxa(np.random.default_rng(1), 5000, balanced=True)
    counts = [balanced.count(t) for t in TAXA]
    assert min(counts) > 350


@pytest.mark.parametrize("dark_field", [False, True])
def test_full_frame_returns_the_asked_boxes_inside_the_image(dark_field: bool) -> None:
    frame, truth = render_full_frame(
        np.random.default_rng(5), width=800, height=600, n_objects=25, dark_field=dark_field
    )
    assert frame.shape == (600, 800)
    assert frame.dtype == np.uint8
    assert len(truth) == 25
    taken = np.zeros(frame.shape, bool)
    for taxon, (x, y, w, h) in truth:
        assert taxon in TAXA
        assert w > 0 and h > 0
        assert x >= 0 and x + w <= 800 and y >= 0 and y + h <= 600
        assert not taken[y : y + h, x : x + w].any(), "objects do not overlap"
        taken[y : y + h, x : x + w] = True
    assert (border_level(frame) < 60) == dark_field


def test_full_frame_objects_differ_from_the_background() -> None:
    frame, truth = render_full_frame(np.random.default_rng(2), n_objects=10)
    _, (x, y, w, h) = max(truth, key=lambda t: t[1][2] * t[1][3])
    patch = frame[y : y + h, x : x + w]
    assert int(np.median(frame)) - int(patch.min()) > 40, "bright-field objects are darker"


def test_rendering_is_deterministic_by_seed() -> None:
    a = [render_roi(t, np.random.default_rng(11)) for t in TAXA]
    b = [render_roi(t, np.random.default_rng(11)) for t in TAXA]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    fa, ta = render_full_frame(np.random.default_rng(4), width=640, height=480, n_objects=8)
    fb, tb = render_full_frame(np.random.default_rng(4), width=640, height=480, n_objects=8)
    assert np.array_equal(fa, fb) and ta == tb
    c = render_roi("copepod", np.random.default_rng(12))
    assert c.shape != a[TAXA.index("copepod")].shape or not np.array_equal(
        c, a[TAXA.index("copepod")]
    )


def test_make_dataset_is_balanced_prepared_and_mixed_polarity() -> None:
    calls: list[int] = []
    images, labels = make_dataset(
        6, np.random.default_rng(0), size=32, dark_fraction=0.5, progress=calls.append
    )
    assert images.shape == (60, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels, minlength=len(TAXA)).tolist() == [6] * len(TAXA)
    assert sum(calls) == 60
    # prepare_roi turns every crop dark-on-light, dark-field ones included
    assert all(border_level(img) > 128 for img in images)
    again, labels_again = make_dataset(6, np.random.default_rng(0), size=32, dark_fraction=0.5)
    assert np.array_equal(images, again) and np.array_equal(labels, labels_again)


def test_make_dataset_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_per_class"):
        make_dataset(0, np.random.default_rng(0), size=64)


def test_full_frame_draws_the_asked_taxa_in_order() -> None:
    asked = ["radiolarian", "fiber", "copepod", "radiolarian"]
    _, truth = render_full_frame(
        np.random.default_rng(8), width=640, height=480, n_objects=99, taxa=asked
    )
    assert [t for t, _ in truth] == asked
    with pytest.raises(ValueError, match="unknown taxon 'kraken'"):
        render_full_frame(np.random.default_rng(8), width=640, height=480, taxa=["kraken"])


def test_full_frame_default_draw_is_unchanged_by_the_taxa_option() -> None:
    fa, ta = render_full_frame(np.random.default_rng(9), width=640, height=480, n_objects=6)
    fb, tb = render_full_frame(
        np.random.default_rng(9), width=640, height=480, n_objects=6, taxa=None
    )
    assert np.array_equal(fa, fb) and ta == tb


def test_segmented_dataset_labels_what_segment_full_cuts() -> None:
    counts: dict[str, int] = {}
    frames: list[int] = []
    images, labels = make_segmented_dataset(
        6, np.random.default_rng(0), size=48, counts=counts, progress=frames.append
    )
    assert images.ndim == 3 and images.shape[1:] == (48, 48) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and len(labels) == len(images)
    assert labels.min() >= 0 and labels.max() < len(TAXA)
    assert all(border_level(img) > 128 for img in images), "prepare_roi made them dark-on-light"
    assert sum(frames) == counts["frames"] == 6
    # every segmented object is labelled (whole or part), dropped, or a part over the cap
    assert counts["segmented"] == (
        counts["whole"] + counts["parts"] + counts["parts_over_cap"] + counts["dropped"]
    )
    assert len(labels) == counts["whole"] + counts["parts"]
    assert 15 * 6 <= counts["truth_objects"] < 45 * 6
    assert counts["truth_found"] / counts["truth_objects"] > 0.8, "most objects are found"
    assert counts["whole"] / counts["truth_objects"] > 0.6, "most found as a whole"
    assert counts["dropped"] / counts["segmented"] < 0.1
    assert len(set(labels.tolist())) == len(TAXA), "the deck deals every taxon"


def test_segmented_dataset_is_deterministic_by_seed() -> None:
    a, la = make_segmented_dataset(2, np.random.default_rng(3), size=32)
    b, lb = make_segmented_dataset(2, np.random.default_rng(3), size=32)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = make_segmented_dataset(2, np.random.default_rng(4), size=32)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_segmented_dataset_iou_only_rule_drops_the_pieces() -> None:
    loose: dict[str, int] = {}
    strict: dict[str, int] = {}
    _, la = make_segmented_dataset(3, np.random.default_rng(1), size=32, counts=loose)
    _, lb = make_segmented_dataset(
        3, np.random.default_rng(1), size=32, counts=strict, min_inside=None
    )
    assert (
        strict["parts"] == 0
        and strict["dropped"] == loose["parts"] + loose["dropped"] + (loose["parts_over_cap"])
    )
    assert len(lb) == strict["whole"] == loose["whole"] < len(la)


def test_segmented_dataset_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_frames"):
        make_segmented_dataset(0, np.random.default_rng(0), size=64)
    with pytest.raises(ValueError, match="low < high"):
        make_segmented_dataset(1, np.random.default_rng(0), size=64, objects=(5, 5))


def test_match_objects_rule() -> None:
    truth = [(100, 100, 50, 20), (300, 300, 40, 40)]
    bboxes = [
        (96, 96, 58, 28),  # the first object, padded by 4: IoU 1
        (306, 306, 16, 16),  # a piece well inside the second: part
        (286, 286, 20, 20),  # on the second object's corner, mostly outside: dropped
        (500, 10, 20, 20),  # noise far away: dropped
    ]
    pairs, counts = match_objects(bboxes, truth, pad=4, shape=(600, 800))
    assert pairs == [(0, 0), (1, 1)]
    assert counts["whole"] == 1 and counts["parts"] == 1 and counts["dropped"] == 2
    assert counts["truth_found"] == 2
    pairs, counts = match_objects(bboxes, truth, pad=4, shape=(600, 800), min_inside=None)
    assert pairs == [(0, 0)] and counts["dropped"] == 3
    # a box clipped at the frame edge keeps that side: no padding to remove there
    assert tight_boxes([(0, 0, 10, 10)], 4, (100, 100)).tolist() == [[0, 0, 6, 6]]
    assert match_objects([], truth, pad=4, shape=(600, 800))[1]["truth_found"] == 0
