"""The ONNX Runtime backend and the plankton head on the committed model."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import BackendError, ConfigError
from seawatch.contracts.preprocess import batch_tensor, prepare_roi
from seawatch.contracts.records import UNKNOWN
from seawatch.inference.factory import open_backend
from seawatch.models.plankton.head import PlanktonClassifier


@pytest.fixture(scope="module")
def classifier(model_dir):
    card = load_card(model_dir)
    backend = open_backend("onnxruntime", model_dir / ONNX_FILE, threads=1)
    yield PlanktonClassifier(backend, card, max_batch=8, top_k=3)
    backend.close()


def test_predicts_any_count_in_chunks_of_max_batch(classifier):
    rng = np.random.default_rng(0)
    tensor = rng.uniform(0, 255, (21, 1, classifier.card.input.size, classifier.card.input.size))
    predictions = classifier.predict(tensor.astype(np.float32))
    assert len(predictions) == 21
    for p in predictions:
        assert len(p.top_k) == 3
        names = [name for name, _ in p.top_k]
        assert set(names) <= set(classifier.card.class_names)
        probs = [prob for _, prob in p.top_k]
        assert probs == sorted(probs, reverse=True)
        assert p.taxon in (names[0], UNKNOWN)
    assert classifier.predict(np.zeros((0, 1, 64, 64), np.float32)) == []


def test_batching_does_not_change_answers(classifier):
    rng = np.random.default_rng(1)
    size = classifier.card.input.size
    tensor = rng.uniform(0, 255, (10, 1, size, size)).astype(np.float32)
    whole = classifier.predict(tensor)
    single = [classifier.predict(tensor[i : i + 1])[0] for i in range(10)]
    for a, b in zip(whole, single, strict=True):
        assert a.taxon == b.taxon
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def test_synthetic_rois_are_mostly_classified_right(classifier):
    from seawatch.models.plankton.synthetic import TAXA, render_roi

    rng = np.random.default_rng(123)
    size = classifier.card.input.size
    truth, crops = [], []
    for taxon in TAXA:
        for _ in range(10):
            truth.append(taxon)
            crops.append(prepare_roi(render_roi(taxon, rng, dark_field=rng.random() < 0.2), size))
    predictions = classifier.predict(batch_tensor(crops))
    accuracy = np.mean([p.taxon == t for p, t in zip(predictions, truth, strict=True)])
    assert accuracy >= 0.85, accuracy


def test_unknown_backend_and_broken_model_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="onnxruntime"):
        open_backend("tensorrt-magic", tmp_path / "m.onnx", threads=1)
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="cannot load"):
        open_backend("onnxruntime", tmp_path / "m.onnx", threads=1)
