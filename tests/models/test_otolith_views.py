"""Test-time views as a serving setting: the committed detector rebuilt from its graph is the
same model, its 1- and 4-view variants average the 1-view maps as the 8-view graph does, each
has its own threshold, and the card's table is what the variants say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card, sha256_file
from seawatch.models.otolith.head import THRESHOLD_KEY, prepare_otolith
from seawatch.models.otolith.serving_views import SERVING_KEY, variant_dir
from seawatch.models.otolith.synthetic import render_otolith

COMMITTED = Path(__file__).resolve().parents[2] / "models" / "otolith"


def _committed() -> Path:
    if not (COMMITTED / ONNX_FILE).is_file():
        pytest.skip(f"{COMMITTED} is not in this checkout")
    return COMMITTED


def _inputs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kinds = [None, "crack", "broken", "debris"]
    images = [render_otolith(rng, anomaly=kinds[i % len(kinds)]) for i in range(n)]
    return np.stack([prepare_otolith(im, 128) for im in images])


# numpy copies of network.turn / transform / untransform / view_symmetries (no torch here)
def _turn(x: np.ndarray, k: int) -> np.ndarray:
    k %= 4
    if k == 1:
        return np.swapaxes(x[..., ::-1], -2, -1)
    if k == 2:
        return x[..., ::-1, ::-1]
    if k == 3:
        return np.swapaxes(x, -2, -1)[..., ::-1]
    return x


def _symmetries(views: int) -> list[tuple[int, bool]]:
    turns = range(0, 4, 4 // min(views, 4))
    return [(k, m) for m in (False, True)[: 1 + (views == 8)] for k in turns]


def _heatmap(path: Path, x: np.ndarray) -> np.ndarray:
    from seawatch.models.onnx_export import ort_session

    return ort_session(path).run(["heatmap"], {"image": np.ascontiguousarray(x)})[0]


@pytest.mark.parametrize("views", [4, 8])
def test_the_variants_average_the_one_view_maps_as_the_trained_graph_does(views):
    """Views 4 and the committed 8-view graph equal the 1-view graph's maps of the turned (and
    mirrored) image, turned back and averaged: one set of weights, three view counts."""
    model_dir = _committed()
    one, other = variant_dir(model_dir, 1) / ONNX_FILE, variant_dir(model_dir, views) / ONNX_FILE
    if views == 8:
        other = model_dir / ONNX_FILE
    if not one.is_file() or not other.is_file():
        pytest.skip("no view variants: run seawatch train otolith-views --model models/otolith")
    x = _inputs(3, seed=11)
    total = np.zeros((len(x), 64, 64), np.float32)
    for k, mirrored in _symmetries(views):
        view = _turn(x[..., ::-1] if mirrored else x, k)
        back = _turn(_heatmap(one, view), -k)
        total = total + (back[..., ::-1] if mirrored else back)
    np.testing.assert_allclose(_heatmap(other, x), total / views, rtol=1e-4, atol=1e-4)


def test_the_cards_table_is_what_the_variants_say():
    model_dir = _committed()
    card = load_card(model_dir)
    table = card.metrics.get(SERVING_KEY)
    if table is None:
        pytest.skip("no serving views table: run seawatch train otolith-views")
    assert set(table["choices"]) == {"1", "4", "8"} and table["trained"] == 8
    trained = table["choices"]["8"]
    assert trained["reproduces_card"] and trained["release"] == card.release
    assert trained["threshold"] == pytest.approx(card.thresholds[THRESHOLD_KEY], abs=1e-5)
    assert trained["auroc"] == card.metrics["auroc"]
    for views in ("1", "4"):
        choice, variant = table["choices"][views], load_card(model_dir / f"views{views}")
        assert variant.release == choice["release"] and f".views{views}+" in variant.release
        assert variant.thresholds[THRESHOLD_KEY] == choice["threshold"]
        assert variant.metrics["auroc"] == choice["auroc"]
        assert variant.training == card.training  # the same trained weights
    aurocs = {int(v): c["selection_auroc"] for v, c in table["choices"].items()}
    cpu = table["recommended"]["cpu"]
    assert aurocs[cpu] >= max(aurocs.values()) - table["auroc_tolerance"]
    assert all(
        aurocs[v] < max(aurocs.values()) - table["auroc_tolerance"] for v in aurocs if v < cpu
    )


def test_the_rebuilt_detector_is_the_committed_graph():
    pytest.importorskip("torch")
    from seawatch.models.otolith.reexport import PARITY_ATOL, check_rebuilt, rebuild_detector

    model_dir = _committed()
    model = rebuild_detector(model_dir)
    assert model.views == 8 and model.student_input == "gray"
    x = np.concatenate([_inputs(2, seed=5), np.full((1, 3, 128, 128), 200, np.float32)])
    scratch = Path(pytest.importorskip("tempfile").mkdtemp()) / ONNX_FILE
    try:
        assert check_rebuilt(model, model_dir / ONNX_FILE, scratch, x, size=128) <= PARITY_ATOL
    finally:
        shutil.rmtree(scratch.parent)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The committed detector's graph and card, served with views by a small-data run."""
    pytest.importorskip("torch")
    from seawatch.models.otolith.views_build import build_serving_views

    model_dir = tmp_path_factory.mktemp("otolith-views")
    for name in (ONNX_FILE, "card.json"):
        shutil.copyfile(_committed() / name, model_dir / name)
    table = build_serving_views(
        model_dir, command="t", scale=0.02, min_s=0.0, threads=(1,), rounds=1, min_calls=1
    )
    return model_dir, table


def test_the_command_writes_variants_with_their_own_thresholds(built):
    model_dir, table = built
    parent = load_card(model_dir)
    assert parent.onnx_sha256 == sha256_file(COMMITTED / ONNX_FILE)  # the trained graph stays
    assert parent.metrics[SERVING_KEY] == json.loads(json.dumps(table))
    thresholds = set()
    for views in ("1", "4", "8"):
        choice = table["choices"][views]
        thresholds.add(choice["threshold"])
        assert choice["specimens_per_s"]["1"] > 0
        if views != "8":
            variant = load_card(model_dir / f"views{views}")
            assert variant.thresholds[THRESHOLD_KEY] == choice["threshold"]
            assert table["details"][views]["parity"]["torch_vs_onnx_max_abs_diff"] < 1e-4
    assert len(thresholds) == 3  # the score scale changes with the views
    assert table["details"]["8"]["parity"]["rebuilt_vs_committed_max_abs_diff"] <= 1e-5
    assert table["recommended"]["cpu"] in (1, 4, 8)


def test_user_recalibration_recalibrates_every_view_count(built, tmp_path):
    import cv2

    from seawatch.models.otolith.calibrate import recalibrate

    model_dir, table = built
    normals = tmp_path / "normals"
    normals.mkdir()
    rng = np.random.default_rng(9)
    for i in range(20):
        cv2.imwrite(str(normals / f"{i}.png"), (render_otolith(rng) * 0.8).astype(np.uint8))
    out = tmp_path / "out"
    card = recalibrate(model_dir, normals, out, far=0.05, version="9.9", command="t")
    for views in ("1", "4"):
        variant = load_card(out / f"views{views}")
        assert variant.version == f"9.9.views{views}"
        assert variant.thresholds[THRESHOLD_KEY] != table["choices"][views]["threshold"]
        assert card.metrics[SERVING_KEY]["choices"][views]["release"] == variant.release
        assert variant.metrics["user_calibration"]["normal_specimens"] == 20
