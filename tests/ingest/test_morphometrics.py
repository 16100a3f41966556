"""Morphometrics of known shapes: discs, ellipses, rectangles, units."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawatch.ingest.morphometrics import feret_diameter, measure_contour, measure_mask


def _ellipse(a: float, b: float, angle: float = 0.0) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse (semi-axes a, b, rotated by angle degrees)."""
    size = 2 * math.ceil(a) + 11
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    t = math.radians(angle)
    u = xx * math.cos(t) + yy * math.sin(t)
    v = -xx * math.sin(t) + yy * math.cos(t)
    return ((u / a) ** 2 + (v / b) ** 2 <= 1.0).astype(np.uint8)


def _disc(radius: float) -> np.ndarray:
    return _ellipse(radius, radius)


def _outline(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    assert len(contours) == 1
    return contours[0]


@pytest.mark.parametrize("radius", [8, 15, 40, 120])
def test_disc_esd_axes_and_feret(radius: int) -> None:
    morph = measure_mask(_disc(radius))
    assert morph.esd_px == pytest.approx(2 * radius, rel=0.03)
    assert morph.major_px == pytest.approx(2 * radius, rel=0.03)
    assert morph.minor_px == pytest.approx(2 * radius, rel=0.03)
    assert morph.major_px >= morph.minor_px
    # caliper across the pixel squares: the centre-to-centre span plus one pixel
    assert morph.feret_px == pytest.approx(2 * radius + 1, rel=0.03)


@pytest.mark.parametrize(
    ("a", "b", "angle"), [(40, 15, 0), (40, 15, 30), (60, 25, 117), (25, 24, 45)]
)
def test_ellipse_axes(a: int, b: int, angle: float) -> None:
    morph = measure_mask(_ellipse(a, b, angle))
    assert morph.major_px == pytest.approx(2 * a, rel=0.03)
    assert morph.minor_px == pytest.approx(2 * b, rel=0.03)
    assert morph.area_px == pytest.approx(math.pi * a * b, rel=0.03)
    assert morph.feret_px == pytest.approx(2 * a + 1, rel=0.03)


@pytest.mark.parametrize(("w", "h"), [(30, 20), (1, 50), (64, 64), (200, 3)])
def test_axis_aligned_rectangle(w: int, h: int) -> None:
    mask = np.zeros((h + 10, w + 10), np.uint8)
    mask[5 : 5 + h, 5 : 5 + w] = 1
    morph = measure_mask(mask)
    assert morph.area_px == w * h
    assert morph.feret_px == pytest.approx(math.hypot(w, h), abs=1e-9)
    # a uniform bar of length L has variance L^2 / 12 -> axis 4 * sqrt(L^2/12) = 1.155 L
    assert morph.major_px == pytest.approx(4 * math.sqrt((max(w, h) ** 2 - 1) / 12), rel=1e-6)


@pytest.mark.parametrize("angle", [17.0, 45.0, 80.0])
def test_rotated_rectangle_feret_is_its_diagonal(angle: float) -> None:
    yy, xx = np.mgrid[0:200, 0:200] - 100
    t = math.radians(angle)
    u = xx * math.cos(t) + yy * math.sin(t)
    v = -xx * math.sin(t) + yy * math.cos(t)
    mask = (np.abs(u) <= 60) & (np.abs(v) <= 20)
    morph = measure_mask(mask)
    assert morph.area_px == pytest.approx(120 * 40, rel=0.03)
    assert morph.feret_px == pytest.approx(math.hypot(120, 40), rel=0.03)


def test_single_pixel_and_empty_mask() -> None:
    one = np.zeros((5, 5), np.uint8)
    one[2, 3] = 1
    morph = measure_mask(one)
    assert (morph.area_px, morph.major_px, morph.minor_px) == (1.0, 0.0, 0.0)
    assert morph.feret_px == pytest.approx(math.sqrt(2))
    empty = measure_mask(np.zeros((5, 5), np.uint8))
    assert (empty.area_px, empty.feret_px, empty.esd_px) == (0.0, 0.0, 0.0)


def test_boolean_and_255_masks_measure_the_same() -> None:
    mask = _ellipse(30, 12, 20)
    reference = measure_mask(mask)
    assert measure_mask(mask.astype(bool)) == reference
    assert measure_mask(mask * 255) == reference


def test_mask_must_be_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        measure_mask(np.zeros((3, 3, 3), np.uint8))


def test_contour_matches_mask_and_fills_holes() -> None:
    mask = _ellipse(50, 30, 35)
    contour = _outline(mask) + 1000  # frame coordinates far from the origin
    assert measure_contour(contour) == measure_mask(mask)
    ring = _disc(30)
    ring[15:56, 15:56] -= _disc(15)  # a 71 px disc with a 41 px hole in its centre
    assert measure_mask(ring).area_px < measure_mask(_disc(30)).area_px
    filled = measure_contour(_outline(ring))
    assert filled.area_px == measure_mask(_disc(30)).area_px  # the hole counts as object


def test_physical_units_scale_with_pixel_size() -> None:
    px = 2.5
    morph = measure_mask(_ellipse(40, 20, 10), pixel_size_um=px)
    assert morph.pixel_size_um == px
    assert morph.esd_um == pytest.approx(morph.esd_px * px)
    assert morph.area_um2 == pytest.approx(morph.area_px * px * px)
    assert morph.major_um == pytest.approx(morph.major_px * px)
    assert morph.minor_um == pytest.approx(morph.minor_px * px)
    assert morph.feret_um == pytest.approx(morph.feret_px * px)
    assert morph.biovolume_um3 == pytest.approx(math.pi / 6 * (morph.esd_px * px) ** 3)
    plain = measure_mask(_ellipse(40, 20, 10))
    assert plain.esd_um is None and plain.biovolume_um3 is None and plain.area_um2 is None


def _brute_feret(points: np.ndarray) -> float:
    corners = [
        (x + dx, y + dy) for x, y in points for dx, dy in itertools.product((-0.5, 0.5), repeat=2)
    ]
    return max(math.dist(p, q) for p, q in itertools.combinations(corners, 2))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=25))
def test_feret_matches_brute_force(points: list[tuple[int, int]]) -> None:
    pts = np.array(points, dtype=np.int32)
    assert feret_diameter(pts) == pytest.approx(_brute_feret(pts), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 80), h=st.integers(1, 80))
def test_rectangle_properties(w: int, h: int) -> None:
    mask = np.zeros((h + 2, w + 2), bool)
    mask[1:-1, 1:-1] = True
    morph = measure_mask(mask)
    assert morph.area_px == w * h
    assert morph.feret_px == pytest.approx(math.hypot(w, h))
    assert morph.major_px >= morph.minor_px >= 0.0
