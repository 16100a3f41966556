"""The open-set decider's batched scores (issue 26): a poll scored in one matrix product, the
tracklets' view scores kept, the occlusion test skipped under ``min_quality``, decide exactly
as every score computed afresh one sighting at a time, on a recorded stream of camera passes."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.head import FishIdentifier
from seawatch.models.fish.open_set import OpenSetDecider
from seawatch.models.fish.open_set_stream import open_set_stream
from seawatch.models.fish.quality import view_quality
from seawatch.models.fish.score_cache import FreshScores
from seawatch.models.fish.tracklets import Place, Tracklets

SEED, SIGHTINGS, POLL = 7100423, 900, 64  # a development seed of benchmarks/fish_open_set.py


@pytest.fixture(scope="module")
def recorded(fish_model_dir):
    """The stream's embeddings, sources and views (model inputs), embedded once."""
    stream = open_set_stream(SEED, sightings=SIGHTINGS, known=40, new=20, cameras=4)
    card = load_card(fish_model_dir)
    with OnnxRuntimeBackend(fish_model_dir / ONNX_FILE, threads=1) as backend:
        head = FishIdentifier(backend, card, Gallery(), max_batch=POLL)
        inputs8 = [head.input8(s.image) for s in stream]
        embeddings = head.embed(np.stack(inputs8).transpose(0, 3, 1, 2).astype(np.float32))
    sources = [SightingSource(s.uid, s.captured_at_ns) for s in stream]
    return card, stream, inputs8, embeddings, sources


def _run(fish_model_dir, recorded, *, fresh: bool):
    """Decide the stream in polls; ``fresh``: every score afresh, one sighting at a time, and
    every view's quality in full (the reference)."""
    card, stream, inputs8, embeddings, sources = recorded
    gallery = Gallery.load(fish_model_dir / card.files["gallery"])
    decider = OpenSetDecider(
        gallery, float(card.thresholds["match_similarity"]), tracklets=Tracklets()
    )
    floor = 0.0 if fresh else decider.min_quality
    if fresh:
        decider.scores = FreshScores(gallery)
    places = [
        Place(s.camera, s.captured_at_ns, s.box, view_quality(x, floor=floor))
        for s, x in zip(stream, inputs8, strict=True)
    ]
    answers, versions = [], []
    for start in range(0, len(stream), POLL):
        poll = slice(start, start + POLL)
        before = gallery.version
        answers += decider.decide(embeddings[poll], sources[poll], places[poll])
        versions.append(gallery.version - before)
    return answers, decider.merges, gallery, versions


def test_batched_scores_decide_as_one_at_a_time(fish_model_dir, recorded) -> None:
    batched, merges, gallery, versions = _run(fish_model_dir, recorded, fresh=False)
    single, merges_1, gallery_1, _ = _run(fish_model_dir, recorded, fresh=True)
    # the stream changes the gallery in the middle of polls (new fish, provisional views),
    # so the scores computed for a poll's later sightings go stale and must be redone
    assert sum(s.new_individual for s in single) >= 5
    assert sum(v > 0 for v in versions) >= 5
    assert len(batched) == len(single) == SIGHTINGS
    for k, (a, b) in enumerate(zip(batched, single, strict=True)):
        same = (a.individual, a.new_individual, a.provisional, a.kept_view, a.kept)
        assert same == (b.individual, b.new_individual, b.provisional, b.kept_view, b.kept), k
        assert a.similarity == pytest.approx(b.similarity, abs=2e-6), k  # float32's last bit
    assert merges == merges_1
    assert gallery.ids == gallery_1.ids
    for individual in gallery.ids:
        assert gallery.views(individual)[1] == gallery_1.views(individual)[1]


def test_the_quality_floor_changes_no_verdict_on_the_bar(recorded) -> None:
    _, stream, inputs8, _, _ = recorded
    bar = 80.0
    full = np.array([view_quality(x) for x in inputs8])
    floored = np.array([view_quality(x, floor=bar) for x in inputs8])
    assert ((full >= bar) == (floored >= bar)).all()
    assert (floored[full >= bar] == full[full >= bar]).all()  # the usable views: same score
    assert any(s.poor == "occluded" for s in stream) and (full == 0).any()  # hidden views in it
