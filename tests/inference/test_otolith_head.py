"""The otolith head: preparing photographs, batching, flags, output checks, overlays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, InputSpec, ModelCard, TrainingSummary, sha256_file
from seawatch.contracts.errors import BackendError, ConfigError
from seawatch.inference.factory import open_backend
from seawatch.models.otolith.head import (
    OtolithDetector,
    OtolithResult,
    overlay_heatmap,
    prepare_otolith,
)
from seawatch.models.otolith.synthetic import render_otolith

SIZE = 64


def _card(threshold: float = 1.0, onnx_sha256: str = "0" * 64) -> ModelCard:
    return ModelCard(
        task="otolith",
        name="otolith-test",
        version="0",
        architecture="test",
        input=InputSpec(size=SIZE, channels=3, mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2)),
        output="score",
        outputs=["score", "heatmap"],
        thresholds={"anomaly_score": threshold},
        training=TrainingSummary(
            command="test", seed=0, data={}, epochs=0, seconds=0, device="cpu"
        ),
        onnx_sha256=onnx_sha256,
        created_at=datetime.now(UTC).isoformat(),
    )


class _FakeBackend:
    """Scores each image by its mean value / 100; can return a wrong shape on purpose."""

    name = "fake"

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.batches: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_outputs(batch)[0]

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        self.batches.append(len(batch))
        score = batch.mean((1, 2, 3)) / 100.0
        heat = np.repeat(score[:, None, None], 4, 1).repeat(4, 2).astype(np.float32)
        if self.broken:
            return score[:, None], heat
        return score.astype(np.float32), heat

    def close(self) -> None:
        pass


def test_prepare_makes_rgb_0_255_from_every_decoded_layout() -> None:
    bgr = render_otolith(np.random.default_rng(0), size=96)
    rgb = prepare_otolith(bgr, SIZE)
    assert rgb.shape == (3, SIZE, SIZE) and rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 255.0
    # channel order: the generator's blue channel ends up last
    np.testing.assert_allclose(rgb[2].mean(), bgr[..., 0].mean(), atol=1.0)
    np.testing.assert_allclose(rgb[0].mean(), bgr[..., 2].mean(), atol=1.0)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(prepare_otolith(bgra, SIZE), rgb)
    gray = prepare_otolith(bgr[..., 1], SIZE)
    np.testing.assert_array_equal(gray[0], gray[1])
    np.testing.assert_array_equal(gray[0], gray[2])
    deep = prepare_otolith(bgr.astype(np.uint16) << 4, SIZE)  # 12-bit camera in 16-bit words
    np.testing.assert_allclose(deep, rgb, atol=1.0)


def test_prepare_pads_non_square_images_with_the_tray_colour() -> None:
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:] = (10, 20, 30)
    wide[10:30, 30:50] = 250
    out = prepare_otolith(wide, 40)
    assert out.shape == (3, 40, 40)
    np.testing.assert_array_equal(out[:, 0, 0], [30, 20, 10])  # padding = tray, RGB order
    with pytest.raises(ValueError, match="dtype"):
        prepare_otolith(wide.astype(np.float32), 40)
    with pytest.raises(ValueError, match="shape"):
        prepare_otolith(np.zeros((4, 4, 2), np.uint8), 40)


def test_predict_chunks_by_max_batch_and_flags_scores_above_the_threshold() -> None:
    backend = _FakeBackend()
    detector = OtolithDetector(backend, _card(threshold=1.0), max_batch=4)
    assert detector.input_size == SIZE
    levels = np.array([50, 99, 100, 101, 150, 200, 20, 180, 100.5, 0], np.float32)
    tensor = np.ones((len(levels), 3, SIZE, SIZE), np.float32) * levels[:, None, None, None]
    results = detector.predict(tensor)
    assert backend.batches == [4, 4, 2]
    assert [r.anomaly for r in results] == list(levels / 100 > 1.0)
    assert all(isinstance(r, OtolithResult) and r.threshold == 1.0 for r in results)
    assert results[4].score == pytest.approx(1.5) and results[4].heatmap.shape == (4, 4)
    assert detector.predict(np.zeros((0, 3, SIZE, SIZE), np.float32)) == []


def test_wrong_output_shape_is_a_backend_error_and_bad_cards_are_refused() -> None:
    detector = OtolithDetector(_FakeBackend(broken=True), _card(), max_batch=8)
    with pytest.raises(BackendError, match="expected"):
        detector.predict(np.zeros((3, 3, SIZE, SIZE), np.float32))
    with pytest.raises(ValueError, match="N x 3 x 64 x 64"):
        OtolithDetector(_FakeBackend(), _card(), max_batch=8).predict(np.zeros((2, 1, 64, 64)))
    no_threshold = _card().model_copy(update={"thresholds": {}})
    with pytest.raises(ConfigError, match="anomaly_score"):
        OtolithDetector(_FakeBackend(), no_threshold, max_batch=8)
    with pytest.raises(ValueError, match="max_batch"):
        OtolithDetector(_FakeBackend(), _card(), max_batch=0)


def test_overlay_keeps_the_photo_size_and_marks_hot_regions() -> None:
    image = render_otolith(np.random.default_rng(1), size=96)
    heat = np.zeros((32, 32), np.float32)
    heat[10:16, 10:16] = 3.0
    out = overlay_heatmap(image, heat, threshold=1.0)
    assert out.shape == image.shape and out.dtype == np.uint8
    hot, cold = out[36:42, 36:42].astype(int), out[80:90, 80:90].astype(int)
    assert hot[..., 2].mean() > hot[..., 0].mean(), "hot = red"
    assert np.abs(cold - image[80:90, 80:90].astype(int)).mean() < 60, "cold = the photo"
    assert overlay_heatmap(image[..., 0], heat, 1.0).shape == image.shape


def _tiny_mkd(torch):
    """An untrained detector with narrow stages (seeded): the real graph, no training."""
    from seawatch.models.otolith.network import FeatureNet, OtolithMKD, Student

    torch.manual_seed(0)
    widths = (8, 8, 16, 16)
    return OtolithMKD(
        FeatureNet(3, widths),
        Student(1, widths),
        student_input="gray",
        rgb_mean=(0.3, 0.3, 0.3),
        rgb_std=(0.2, 0.2, 0.2),
    )


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained detector exported to ONNX with a card: the real graph, no training."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from seawatch.models.onnx_export import export_onnx

    model = _tiny_mkd(torch)
    out = tmp_path_factory.mktemp("otolith-head")
    path = export_onnx(
        model, out / ONNX_FILE, torch.zeros(2, 3, SIZE, SIZE), output_names=["score", "heatmap"]
    )
    _card(threshold=1.0, onnx_sha256=sha256_file(path)).write(out)
    return out


def test_head_on_a_real_onnx_graph(tiny_artifact: Path) -> None:
    from seawatch.contracts.card import load_card

    card = load_card(tiny_artifact)
    rng = np.random.default_rng(2)
    with open_backend("onnxruntime", tiny_artifact / ONNX_FILE, threads=1) as backend:
        detector = OtolithDetector(backend, card, max_batch=3)
        images = [render_otolith(rng, size=96, anomaly=a) for a in (None, "crack") * 4]
        tensor = np.stack([detector.model_input(im) for im in images])
        results = detector.predict(tensor)
        one_by_one = [detector.predict(tensor[i : i + 1])[0] for i in range(len(tensor))]
    assert len(results) == 8
    for r, single in zip(results, one_by_one, strict=True):
        assert r.heatmap.shape == (SIZE // 2, SIZE // 2) and r.heatmap.dtype == np.float32
        assert r.anomaly == (r.score > r.threshold)
        assert r.score == pytest.approx(float(r.heatmap.max()), rel=1e-5)
        assert r.score == pytest.approx(single.score, rel=1e-4)


# --- test-time views as a serving setting (tasks.otolith.options.views) ---------------------


@pytest.fixture(scope="module")
def views_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny detector served with 8 views (model.onnx) and as views1/ and views4/ variants,
    each with its own threshold, and a parent table recommending 4 on a CPU."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from seawatch.models.otolith.export import export_otolith
    from seawatch.models.otolith.serving_views import SERVING_KEY, variant_version

    model = _tiny_mkd(torch).eval()
    out = tmp_path_factory.mktemp("otolith-views")
    for views, directory, threshold in (
        (8, out, 8.0),
        (4, out / "views4", 4.0),
        (1, out / "views1", 1.0),
    ):
        model.views = views
        path = export_otolith(model, directory / ONNX_FILE, SIZE)
        card = _card(threshold=threshold, onnx_sha256=sha256_file(path))
        if views != 8:
            card = card.model_copy(update={"version": variant_version(card.version, views)})
        card.write(directory)
    table = {"trained": 8, "recommended": {"cpu": 4, "gpu": 8}, "rule": "test", "choices": {}}
    parent = _card(threshold=8.0, onnx_sha256=sha256_file(out / ONNX_FILE))
    parent.model_copy(update={"metrics": {SERVING_KEY: table}}).write(out)
    return out


def _head(model_dir: Path, **options):
    from seawatch.config import load_settings
    from seawatch.models.otolith.head import PLUGIN

    settings = load_settings(
        tasks={"otolith": {"model_dir": str(model_dir), "options": options}},
        inference__backend="onnxruntime",
    )
    return PLUGIN.load(settings.tasks["otolith"], settings)


@pytest.mark.parametrize(("views", "threshold"), [(1, 1.0), (4, 4.0), (8, 8.0), ("8", 8.0)])
def test_each_views_setting_loads_its_graph_and_threshold(views_artifact, views, threshold):
    head = _head(views_artifact, views=views)
    try:
        assert head.views == int(views) and head.threshold == threshold  # the variant's own
        assert head.card.release.startswith("0.views" if int(views) != 8 else "0+")
        rng = np.random.default_rng(3)
        images = [render_otolith(rng, size=96, anomaly=a) for a in (None, "crack")]
        results = head.predict(np.stack([head.model_input(im) for im in images]))
        assert [r.threshold for r in results] == [threshold, threshold]
        assert all(r.anomaly == (r.score > threshold) for r in results)
    finally:
        head.close()


def test_records_scored_with_different_views_carry_different_releases(views_artifact):
    releases = set()
    for views in (1, 4, 8):
        head = _head(views_artifact, views=views)
        releases.add(head.card.release)
        head.close()
    assert len(releases) == 3
    assert any(".views4+" in r for r in releases) and any(".views1+" in r for r in releases)


def test_auto_serves_the_cards_recommendation_for_the_backend(views_artifact):
    head = _head(views_artifact)  # views: auto by default; onnxruntime is a CPU backend
    try:
        assert head.views == 4 and head.threshold == 4.0
    finally:
        head.close()


def test_auto_without_a_views_table_serves_the_trained_graph(tiny_artifact):
    head = _head(tiny_artifact, views="auto")
    try:
        assert head.views == 8 and head.card.release.startswith("0+")
    finally:
        head.close()


@pytest.mark.parametrize("bad", [2, 3, "eight", 0, None])
def test_a_bad_views_value_fails_at_start_naming_the_setting(views_artifact, bad):
    with pytest.raises(ConfigError, match=r"tasks\.otolith\.options\.views: .*'auto', 1, 4 or 8"):
        _head(views_artifact, views=bad)


def test_views_the_artifact_lacks_fail_with_the_command_that_makes_them(tiny_artifact):
    with pytest.raises(ConfigError, match=r"tasks\.otolith\.options\.views is 4.*otolith-views"):
        _head(tiny_artifact, views=4)
