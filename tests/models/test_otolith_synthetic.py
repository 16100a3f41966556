"""The synthetic otolith generator: format, determinism, variety and what each defect does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seawatch.models.otolith.evaluate import auroc
from seawatch.models.otolith.synthetic import (
    ANOMALY_TYPES,
    COLOUR_ONLY_TYPES,
    NORMAL,
    make_dataset,
    render_otolith,
)

SIZE = 128


def _render(seed: int, anomaly: str | None = None, size: int = SIZE) -> np.ndarray:
    return render_otolith(np.random.default_rng(seed), size=size, anomaly=anomaly)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _body(image: np.ndarray) -> np.ndarray:
    return _gray(image) > 90


def test_anomaly_types_are_the_five_the_daemon_expects() -> None:
    assert ANOMALY_TYPES == ("vaterite", "broken", "crack", "debris", "blur")


@pytest.mark.parametrize("anomaly", [None, *ANOMALY_TYPES])
def test_renders_bgr_uint8_of_the_asked_size_with_a_bright_body_on_dark(anomaly) -> None:
    for size in (96, 256):
        image = _render(1, anomaly, size)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert border.mean() < 60, "the tray is dark"
        assert 0.1 < _body(image).mean() < 0.6, "the otolith fills part of the frame"


def test_same_seed_same_image_other_seed_other_image() -> None:
    np.testing.assert_array_equal(_render(5), _render(5))
    np.testing.assert_array_equal(_render(5, "crack"), _render(5, "crack"))
    assert np.abs(_render(5).astype(int) - _render(6).astype(int)).mean() > 5


def test_normal_specimens_vary_in_size_colour_and_brightness() -> None:
    images = [_render(seed) for seed in range(24)]
    areas = [_body(im).mean() for im in images]
    body_colour = np.array([im[_body(im)].mean(0) for im in images])  # BGR
    warmth = body_colour[:, 2] - body_colour[:, 0]  # R - B: white (small) to cream (large)
    assert np.ptp(areas) > 0.1
    assert np.ptp(warmth) > 25
    assert np.ptp(body_colour.mean(1)) > 30


@pytest.mark.parametrize("anomaly", ANOMALY_TYPES)
def test_each_defect_changes_its_normal_counterpart(anomaly: str) -> None:
    """Same seed: the same specimen, lighting and noise; only the defect differs."""
    for seed in range(6):
        normal, defect = _render(seed), _render(seed, anomaly)
        changed = np.abs(normal.astype(int) - defect.astype(int)).max(2) > 12
        assert changed.any(), f"{anomaly} (seed {seed}) left the image unchanged"
        if anomaly != "blur":  # the others are local
            assert changed.mean() < 0.35, f"{anomaly} changed {changed.mean():.0%} of the image"


def test_broken_loses_body_area_and_crack_darkens_the_body() -> None:
    for seed in range(6):
        normal = _render(seed)
        assert _body(_render(seed, "broken")).sum() < _body(normal).sum()
        crack = _render(seed, "crack")
        inside = _body(normal)
        assert _gray(crack)[inside].min() < _gray(normal)[inside].min() + 1
        assert (_gray(normal) - _gray(crack))[inside].max() > 25


def _detail(image: np.ndarray) -> float:
    """Energy of fine detail above the pixel noise (noise is added after the defocus)."""
    return float(cv2.Laplacian(cv2.GaussianBlur(_gray(image), (0, 0), 1.0), cv2.CV_32F).var())


def test_blur_removes_fine_detail() -> None:
    for seed in range(6):
        assert _detail(_render(seed, "blur", 256)) < 0.6 * _detail(_render(seed, size=256))


def test_vaterite_is_glassy_blue_grey_not_a_brightness_change() -> None:
    for seed in range(8):
        normal, glass = _render(seed, size=256).astype(float), _render(seed, "vaterite", 256)
        changed = np.abs(normal - glass).max(2) > 12
        region = glass.astype(float)[changed]
        assert (region[:, 0] - region[:, 2]).mean() > (
            normal[changed][:, 0] - normal[changed][:, 2]
        ).mean(), "bluer"
        ratio = _gray(glass)[changed].mean() / _gray(normal.astype(np.uint8))[_body(glass)].mean()
        assert 0.55 < ratio < 1.15, "about as bright as the body"


def test_mean_brightness_alone_does_not_find_the_defects() -> None:
    images, labels = make_dataset(np.random.default_rng(3), n_normal=40, n_per_anomaly=8, size=96)
    brightness = np.array([_gray(im).mean() for im in images])
    is_defect = labels != NORMAL
    assert 0.3 < auroc(is_defect, brightness) < 0.7


def test_make_dataset_order_labels_and_transform() -> None:
    images, labels = make_dataset(np.random.default_rng(0), n_normal=3, n_per_anomaly=2, size=64)
    assert images.shape == (13, 64, 64, 3)
    assert list(labels[:3]) == [NORMAL] * 3
    assert list(labels[3:]) == [t for t in ANOMALY_TYPES for _ in range(2)]
    small, _ = make_dataset(
        np.random.default_rng(0), n_normal=2, size=64, transform=lambda im: im[::2, ::2, 0]
    )
    assert small.shape == (2, 32, 32)
    np.testing.assert_array_equal(small[0], images[0][::2, ::2, 0])


def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown anomaly"):
        render_otolith(rng, anomaly="scratch")
    with pytest.raises(ValueError, match="at least 32"):
        render_otolith(rng, size=16)
    with pytest.raises(ValueError, match=">= 0"):
        make_dataset(rng, n_normal=-1)


def test_a_stain_changes_colour_but_not_gray_and_is_not_in_the_default_set() -> None:
    assert COLOUR_ONLY_TYPES == ("stain",) and "stain" not in ANOMALY_TYPES
    hidden = []
    for seed in range(12):
        normal, stained = _render(seed, None, 256), _render(seed, "stain", 256)
        tinted = np.abs(normal.astype(np.int16) - stained).max(2) > 8
        assert tinted.mean() > 0.005, "the stain must tint a visible region"
        gray_moved = np.abs(_gray(normal) - _gray(stained)) > 3
        hidden.append(1.0 - (gray_moved & tinted).sum() / tinted.sum())
    # luminance is kept pixel by pixel; only specimens already clipped in a normal photo leak
    assert np.median(hidden) > 0.99 and np.mean(hidden) > 0.9
