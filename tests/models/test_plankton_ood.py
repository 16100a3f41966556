"""Unknown means unknown: the OOD score, its artifact, the re-export and the head's use.

The committed ``models/plankton`` carries ``ood.npz``; tests that need it skip without it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card, sha256_file
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.ood import OOD_FILE, OodDetector, load_ood
from seawatch.contracts.records import UNKNOWN
from seawatch.models.plankton.head import PlanktonClassifier, PlanktonOutputs, sample_inputs
from seawatch.models.plankton.ood_fit import joint_threshold

MODEL = Path(__file__).resolve().parents[2] / "models" / "plankton"


def _committed() -> Path:
    if not (MODEL / OOD_FILE).is_file():
        pytest.skip(f"{MODEL / OOD_FILE} is not in this checkout")
    return MODEL


class _Backend:
    """Returns fixed probabilities and features, as a two-output graph would."""

    name = "fake"

    def __init__(self, probs: np.ndarray, features: np.ndarray) -> None:
        self.probs, self.features = probs.astype(np.float32), features.astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_outputs(batch)[0]

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.probs[: len(batch)], self.features[: len(batch)]

    def close(self) -> None:
        pass


def _card(outputs: list[str]):
    card = load_card(MODEL)
    return card.model_copy(update={"outputs": outputs, "ood": None})


def test_the_head_reports_unknown_for_an_object_far_from_training() -> None:
    """Confident softmax, far from the bank: unknown (and flagged by the OOD rule); near the
    bank: the taxon."""
    bank = np.eye(4, 8)  # four training directions in an 8-d feature space
    detector = OodDetector(bank, k=1, threshold=0.2)
    probs = np.tile(np.eye(10)[3] * 0.97 + 0.003, (2, 1))
    features = np.array([[1.0, 0.05, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0, 1.0, 0, 0]])
    card = _card(["probs", "features"])
    head = PlanktonClassifier(_Backend(probs, features), card, max_batch=8, top_k=3, ood=detector)
    near, far = head.predict(np.zeros((2, 1, 64, 64), np.float32))
    assert near.taxon == card.class_names[3] and not near.ood_flagged
    assert far.taxon == UNKNOWN and far.ood_flagged
    assert far.ood > 0.2 > near.ood
    assert far.top_k[0][0] == card.class_names[3]  # the candidates are still named


def test_without_a_detector_the_softmax_threshold_alone_decides() -> None:
    """A card without ``ood`` (or a graph without features): the old behaviour, and the
    outputs keep their shapes (a live swap compares them)."""
    card = _card([])
    probs = np.tile(np.eye(10)[3] * 0.97 + 0.003, (2, 1))
    head = PlanktonClassifier(_Backend(probs, np.zeros((2, 8))), card, max_batch=8, top_k=3)
    outputs = head.infer(np.zeros((2, 1, 64, 64), np.float32))
    assert isinstance(outputs, PlanktonOutputs) and outputs.ood.shape == (2,)
    answers = head.interpret(outputs)
    assert [a.taxon for a in answers] == [card.class_names[3]] * 2
    assert all(a.ood is None and not a.ood_flagged for a in answers)
    assert load_ood(MODEL, None) is None


def test_a_detector_needs_the_features_output() -> None:
    detector = OodDetector(np.eye(4, 8), k=1, threshold=0.2)
    with pytest.raises(Exception, match="features"):
        PlanktonClassifier(None, _card([]), max_batch=8, top_k=3, ood=detector)  # type: ignore[arg-type]


def test_the_fitted_score_flags_a_novel_taxon_more_than_known_ones() -> None:
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.plankton.novel import TEST_TAXA, novel_set

    model = _committed()
    card = load_card(model)
    detector = load_ood(model, card.ood)
    head = PlanktonClassifier(
        OnnxRuntimeBackend(model / ONNX_FILE), card, max_batch=64, top_k=3, ood=detector
    )
    known = head.infer(sample_inputs(card, 60, seed=7_100_160)).ood
    images, _ = novel_set(12, 7_100_161, taxa=TEST_TAXA)
    novel = head.infer(images[:, None].astype(np.float32)).ood
    assert np.median(novel) > np.median(known)
    assert (novel > detector.threshold).mean() > 4 * max((known > detector.threshold).mean(), 0.05)


def _copy(tmp_path: Path) -> Path:
    model = _committed()
    target = tmp_path / "plankton"
    shutil.copytree(model, target)
    return target


def test_a_corrupt_ood_file_fails_clearly(tmp_path: Path) -> None:
    model = _copy(tmp_path)
    card = load_card(model)
    (model / OOD_FILE).write_bytes(b"not a bank")
    with pytest.raises(ConfigError, match=r"ood\.npz does not match its card.*plankton-ood"):
        load_ood(model, card.ood)
    spec = dict(card.ood or {}) | {"sha256": sha256_file(model / OOD_FILE)}  # hash "fixed"
    with pytest.raises(ConfigError, match=r"not a readable OOD (bank|scorer).*plankton-ood"):
        load_ood(model, spec)
    (model / OOD_FILE).unlink()
    with pytest.raises(ConfigError, match=r"ood\.npz that is missing"):
        load_ood(model, card.ood)


def test_a_card_without_ood_is_served_with_the_softmax_rule_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from seawatch.config import Settings
    from seawatch.models.plankton.head import PLUGIN

    model = _copy(tmp_path)
    card = json.loads((model / "card.json").read_text())
    card["ood"] = None
    (model / "card.json").write_text(json.dumps(card))
    (model / OOD_FILE).unlink()
    settings = Settings()
    task = settings.tasks["plankton"].model_copy(update={"model_dir": model})
    with caplog.at_level(logging.WARNING):
        head = PLUGIN.load(task, settings)
        PLUGIN.load(task, settings).close()
    assert head.ood is None
    said = [r for r in caplog.records if "no out-of-distribution score" in r.getMessage()]
    assert len(said) == 1  # once per artifact
    head.close()


def test_the_joint_threshold_keeps_the_budget() -> None:
    rng = np.random.default_rng(7_100_170)
    scores = rng.random(1000)
    soft = rng.random(1000) < 0.02
    t = joint_threshold(scores, soft, 0.05)
    assert (soft | (scores > t)).mean() <= 0.05
    assert (soft | (scores > t - 0.01)).mean() > 0.04  # and uses most of it


@pytest.mark.slow
def test_re_export_keeps_the_class_outputs(tmp_path: Path) -> None:
    """A one-output graph re-exported with features and stage3: probs equal to the old
    graph's."""
    from seawatch.models.onnx_export import export_onnx, ort_session
    from seawatch.models.plankton.reexport import add_features_output, rebuild_network

    model = _copy(tmp_path)
    net = rebuild_network(model)
    export_onnx(net, model / ONNX_FILE, __import__("torch").zeros(2, 1, 64, 64))
    card = json.loads((model / "card.json").read_text())
    card |= {"outputs": [], "onnx_sha256": sha256_file(model / ONNX_FILE), "ood": None}
    card.pop("release")
    (model / "card.json").write_text(json.dumps(card))
    x = np.concatenate([sample_inputs(load_card(model), 24, seed=3), np.full((2, 1, 64, 64), 9.0)])
    old = ort_session(model / ONNX_FILE).run(None, {"image": x.astype(np.float32)})
    report = add_features_output(model, command="test")
    new = ort_session(model / ONNX_FILE).run(None, {"image": x.astype(np.float32)})
    assert len(old) == 1 and len(new) == 3 and new[1].shape == (26, 160)
    assert new[2].shape == (26, 192)
    assert report["probs_max_abs_diff_vs_previous_graph"] <= 1e-5
    np.testing.assert_allclose(new[0], old[0], atol=1e-5)
    assert load_card(model).outputs == ["probs", "features", "stage3"]


def test_the_committed_graph_matches_its_torch_weights() -> None:
    """The committed two-output graph is the committed weights (backbone.pt + head)."""
    from seawatch.models.plankton.export import check_parity, exported
    from seawatch.models.plankton.reexport import rebuild_network

    model = _committed()
    x = sample_inputs(load_card(model), 16, seed=5)
    assert check_parity(exported(rebuild_network(model)), model / ONNX_FILE, x) < 1e-4
    reexport = load_card(model).metrics.get("reexport")
    if reexport is not None:  # a graph trained before the features output, re-exported once
        assert reexport["probs_max_abs_diff_vs_previous_graph"] <= 1e-5
