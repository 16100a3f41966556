"""The label-free OOD signals of ``benchmarks/ood_signals.py`` (issue 24, development).

The committed ``models/plankton`` gives the third-stage activations; tests skip without its
backbone. The SimCLR views are checked to leave noise and blur out (the README's argument).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from seawatch.models.plankton.outliers import corrupted_set

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "plankton"


def _bench():
    path = ROOT / "benchmarks" / "ood_signals.py"
    spec = importlib.util.spec_from_file_location("ood_signals_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_third_stage_distance_sees_corrupted_optics() -> None:
    """Mean and std per channel of stage 3 (2 x 96); training-like crops lie nearer the
    bank than the same taxa through corrupted optics."""
    if not (MODEL / "backbone.pt").is_file():
        pytest.skip(f"{MODEL} has no backbone.pt")
    from seawatch.contracts.card import load_card
    from seawatch.models.plankton.head import sample_inputs
    from seawatch.models.plankton.reexport import rebuild_network

    bench = _bench()
    net = rebuild_network(MODEL)
    card = load_card(MODEL)
    crops = sample_inputs(card, 240, seed=7_100_501)[:, 0].astype(np.uint8)
    bank = bench.stage3(net, crops[:200])
    assert bank.shape == (200, 192) and np.isfinite(bank).all()
    near = bench.knn_distance(bank, bench.stage3(net, crops[200:]))
    far = bench.knn_distance(bank, bench.stage3(net, corrupted_set(40, 7_100_502)))
    assert np.median(far) > 1.25 * np.median(near), (np.median(near), np.median(far))


def test_rate_spends_the_validation_budget() -> None:
    """Softmax bar and threshold together flag at most 4 % of validation."""
    bench = _bench()
    rng = np.random.default_rng(7_100_503)
    top = {"validation": rng.uniform(0.3, 1, 2000), "calibration_taxa": rng.uniform(0.2, 1, 500)}
    scores = {"validation": rng.normal(0, 1, 2000), "calibration_taxa": rng.normal(2, 1, 500)}
    rated = bench.rate(scores, top, softmax=0.58)
    assert rated["validation"] <= 100 * bench.TARGET
    assert rated["calibration_taxa"] > 50


def test_simclr_views_keep_noise_and_blur_visible() -> None:
    """The encoder is not taught to ignore an instrument's blur (no blur in its views)."""
    assert _bench().VIEW.blur_probability == 0.0
