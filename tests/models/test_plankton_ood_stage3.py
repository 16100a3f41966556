"""The third-stage OOD inputs (issue 24): the graph's ``stage3`` output, the scorer and the
head reading it, and scorers and graphs from before it still served.

The committed ``models/plankton`` carries the three-output graph and a scorer with stage-3
inputs; tests that need them skip without them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seawatch.contracts.card import ONNX_FILE, load_card, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.ood import OOD_FILE, _sha256, load_ood
from seawatch.contracts.ood_scorer import STAGE3_BANK, OodScorer
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.onnx_export import export_onnx, ort_session
from seawatch.models.plankton.head import PlanktonClassifier, sample_inputs
from seawatch.models.plankton.outliers import outlier_set
from seawatch.models.plankton.reexport import rebuild_network

MODEL = Path(__file__).resolve().parents[2] / "models" / "plankton"
NAMES = ["probs", "features", "stage3"]


def _committed() -> tuple[object, OodScorer]:
    card = load_card(MODEL)
    if "stage3" not in card.outputs or "stage3" not in (card.ood or {}).get("inputs", {}):
        pytest.skip(f"{MODEL} has no stage-3 output or scorer inputs")
    scorer = load_ood(MODEL, card.ood)
    assert isinstance(scorer, OodScorer)
    return card, scorer


def _batch(card, n: int, seed: int) -> np.ndarray:
    """ROIs of the training taxa, drawn organisms of no taxon and flat noise."""
    rois = sample_inputs(card, n, seed=seed)
    shapes = outlier_set(n // 2, seed + 1, size=card.input.size)[:, None].astype(np.float32)
    noise = np.random.default_rng(seed + 2).uniform(0, 255, (4, *rois.shape[1:]))
    return np.concatenate([rois, shapes, noise.astype(np.float32)])


class _TwoOutputs(nn.Module):
    """The graph the weights were served by before ``stage3``: ``(probs, features)``."""

    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), self.net.features(x)


def _two_output_graph(net, path: Path, size: int) -> Path:
    example = torch.zeros(2, 1, size, size)
    names = {"input_names": ["image"], "output_names": ["probs", "features"]}
    return export_onnx(_TwoOutputs(net), path, example, **names)


def test_the_graph_outputs_the_third_stage_and_keeps_probs_and_features(tmp_path: Path) -> None:
    """``stage3`` is each channel's mean and standard deviation over the torch network's
    third stage; ``probs`` and ``features`` equal those of a two-output export of the same
    weights (what was served before) to float tolerance, as the card's re-export records."""
    card, _ = _committed()
    net = rebuild_network(MODEL)
    x = _batch(card, 24, 7_150_301)
    probs, features, stage3 = ort_session(MODEL / ONNX_FILE).run(NAMES, {"image": x})
    assert stage3.shape == (len(x), 192) and features.shape == (len(x), 160)
    with torch.no_grad():
        t = (torch.from_numpy(x) / 255.0 - net.mean) / net.std
        h = net.stages[:3](net.stem(t))
        want = torch.cat([h.mean((2, 3)), h.std((2, 3))], 1).numpy()
    np.testing.assert_allclose(stage3, want, rtol=1e-4, atol=1e-4)
    old = _two_output_graph(net, tmp_path / "old.onnx", card.input.size)
    old_probs, old_features = ort_session(old).run(None, {"image": x})
    np.testing.assert_allclose(probs, old_probs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(features, old_features, rtol=0, atol=1e-5)
    reexport = card.metrics["reexport"]
    assert reexport["previous_outputs"] == ["probs", "features"]
    assert reexport["probs_max_abs_diff_vs_previous_graph"] <= 1e-5
    assert reexport["features_max_abs_diff_vs_previous_graph"] <= 1e-5


def test_the_head_scores_with_the_stage3_output() -> None:
    """The daemon's head passes the graph's ``stage3`` to the scorer: its scores are the
    scorer's on all three outputs, and they move when ``stage3`` does (the input is read)."""
    card, scorer = _committed()
    assert scorer.stage3_dim == card.ood["inputs"]["stage3"]["numbers"] == 192
    assert len(scorer.stage3.bank) == card.ood["inputs"]["stage3"]["bank_objects"]
    head = PlanktonClassifier(
        OnnxRuntimeBackend(MODEL / ONNX_FILE, threads=1), card, max_batch=16, top_k=3, ood=scorer
    )
    x = _batch(card, 24, 7_150_311)
    probs, features, stage3 = ort_session(MODEL / ONNX_FILE).run(NAMES, {"image": x})
    got = head.infer(x).ood
    np.testing.assert_allclose(got, scorer.scores(features, probs, x, stage3), atol=1e-4)
    moved = scorer.scores(features, probs, x, stage3 * 0.5)
    assert np.abs(moved - got).mean() > 0.1
    with pytest.raises(ValueError, match="stage3"):
        scorer.scores(features, probs, x)
    head.close()


def test_a_stage3_scorer_on_a_graph_without_the_output_fails_clearly() -> None:
    card, scorer = _committed()
    old = card.model_copy(update={"outputs": ["probs", "features"]})
    with pytest.raises(ConfigError, match="stage3"):
        PlanktonClassifier(None, old, max_batch=8, top_k=3, ood=scorer)


def _old_scorer(scorer: OodScorer) -> OodScorer:
    """A scorer in the format before the stage-3 inputs (no ``stage3_bank``; the network's
    first rows, those of the older inputs)."""
    arrays = {k: v for k, v in scorer.arrays().items() if k != STAGE3_BANK}
    width = scorer.w1.shape[0] - 1 - scorer.stage3_dim
    for name in ("in_mean", "in_scale"):
        arrays[name] = arrays[name][:width]
    arrays["w1"] = arrays["w1"][:width]
    return OodScorer(arrays)


@pytest.mark.parametrize("outputs", [NAMES, ["probs", "features"]])
def test_an_ood_npz_without_stage3_still_serves(tmp_path: Path, outputs: list[str]) -> None:
    """An ``ood.npz`` from before (no stage-3 bank) loads through its card and is served by
    the head on the new three-output graph and on the old two-output one alike."""
    card, scorer = _committed()
    model = tmp_path / "plankton"
    shutil.copytree(MODEL, model)
    old = _old_scorer(scorer)
    old.save(model / OOD_FILE)
    spec = dict(card.ood) | {"sha256": _sha256(model / OOD_FILE)}
    spec["inputs"] = {k: v for k, v in spec["inputs"].items() if k != "stage3"}
    update = {"ood": spec}
    if outputs != NAMES:
        _two_output_graph(rebuild_network(MODEL), model / ONNX_FILE, card.input.size)
        update |= {"outputs": outputs, "onnx_sha256": sha256_file(model / ONNX_FILE)}
    card.model_copy(update=update).write(model)
    served = load_card(model)
    loaded = load_ood(model, served.ood)
    assert isinstance(loaded, OodScorer) and loaded.stage3 is None
    with np.load(model / OOD_FILE) as data:
        assert STAGE3_BANK not in data.files
    head = PlanktonClassifier(
        OnnxRuntimeBackend(model / ONNX_FILE, threads=1), served, max_batch=16, top_k=3, ood=loaded
    )
    x = _batch(served, 16, 7_150_321)
    probs, features = ort_session(model / ONNX_FILE).run(["probs", "features"], {"image": x})
    np.testing.assert_allclose(head.infer(x).ood, loaded.scores(features, probs, x), atol=1e-4)
    assert len(head.predict(x)) == len(x)
    head.close()
