"""The fish head: preprocessing, batching, and open-set identification with enrolment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.card import ModelCard
from seawatch.contracts.errors import BackendError, ConfigError
from seawatch.contracts.records import UNKNOWN
from seawatch.models.fish.gallery import Gallery, new_id
from seawatch.models.fish.gallery_records import SightingSource
from seawatch.models.fish.head import PROVISIONAL_VIEWS, FishIdentifier, prepare_fish
from tests.models.fish_cards import fake_fish_card

REPO = Path(__file__).resolve().parents[2]
DIM = 8


class CodeBackend:
    """Embeds a crop as the unit vector of the 'fish code' written in its first pixel."""

    name = "fake"

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.batches: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        # not quite unit norm, as an FP16 engine might return
        return 1.01 * np.eye(self.dim, dtype=np.float32)[batch[:, 0, 0, 0].astype(int) % self.dim]

    def run_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        return (self.run(batch),)

    def close(self) -> None:
        pass


def _card(task: str = "fish", dim: int = DIM) -> ModelCard:
    return fake_fish_card(dim=dim, task=task)


def _crops(*codes: int) -> np.ndarray:
    tensor = np.zeros((len(codes), 3, 16, 32), np.float32)
    tensor[:, 0, 0, 0] = codes
    return tensor


def test_prepare_accepts_gray_bgr_bgra_and_16_bit() -> None:
    blue = np.zeros((20, 40, 3), np.uint8)
    blue[..., 0] = 200  # BGR: pure blue
    out = prepare_fish(blue, 16, 32)
    assert out.shape == (3, 16, 32) and out.dtype == np.float32
    assert out[2].min() == 200 and out[:2].max() == 0  # RGB order: blue is the last channel
    bgra = np.dstack([blue, np.full((20, 40), 255, np.uint8)])
    np.testing.assert_array_equal(prepare_fish(bgra, 16, 32), out)
    gray16 = np.full((10, 10), 4095, np.uint16)  # a 12-bit camera in a 16-bit container
    gray = prepare_fish(gray16, 16, 32)
    assert gray.shape == (3, 16, 32) and gray.min() == gray.max() == 255
    tall = np.zeros((64, 16), np.uint8)
    tall[:, 8:] = 255  # a crop fills the input snout to tail: stretched, not letterboxed
    filled = prepare_fish(tall, 16, 32)[0]
    assert filled[:, :15].max() == 0 and filled[:, 17:].min() == 255
    with pytest.raises(ValueError, match="dtype"):
        prepare_fish(np.zeros((4, 4), np.float32), 16, 32)


def test_embed_runs_chunks_of_max_batch_and_checks_the_output_shape() -> None:
    backend = CodeBackend()
    identifier = FishIdentifier(backend, _card(), Gallery(), max_batch=3)
    emb = identifier.embed(_crops(*range(7)))
    assert emb.shape == (7, DIM) and backend.batches == [3, 3, 1]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)  # renormalised
    assert identifier.identify(_crops()) == []
    backend.run = lambda batch: np.zeros((len(batch) + 1, DIM), np.float32)  # type: ignore[method-assign]
    with pytest.raises(BackendError, match="expected"):
        identifier.embed(_crops(1, 2))


def test_unknown_fish_is_enrolled_provisionally_and_matched_next_time(tmp_path: Path) -> None:
    gallery = Gallery()
    gallery.enrol("zf-a", np.eye(DIM)[0])
    identifier = FishIdentifier(CodeBackend(), _card(), gallery, max_batch=2)
    sources = [SightingSource(f"cam@{t}", t, f"frames.fish/0/{t}") for t in range(4)]
    embeddings = identifier.embed(_crops(0, 5, 5, 6))
    known, new, again, other = identifier.decide(embeddings, sources=sources)
    assert (known.individual, known.new_individual, known.provisional) == ("zf-a", False, False)
    assert known.similarity == pytest.approx(1.0)
    assert new.new_individual and new.provisional and new.individual == new_id("cam@1")
    assert new.similarity < 0.5  # the best score it missed
    assert again.individual == new.individual and not again.new_individual and again.provisional
    assert again.similarity == pytest.approx(1.0)  # a cosine, whatever the backend's norm
    assert other.individual == new_id("cam@3") and other.new_individual
    assert gallery.entry(new.individual).first_seen_ns == 1
    # the same frames again (a replay after a crash): the same answers, nothing added
    views = len(gallery.views(new.individual)[0])
    replayed = identifier.decide(embeddings, sources=sources)
    assert _answers(replayed) == _answers([known, new, again, other])
    assert not any(s.kept_view for s in replayed)  # nothing to publish again
    assert len(gallery.views(new.individual)[0]) == views and len(gallery) == 3
    path = gallery.save(tmp_path / "gallery.npz")
    later = FishIdentifier(CodeBackend(), _card(), Gallery.load(path, dim=DIM), max_batch=8)
    (seen_again,) = later.identify(_crops(6))
    assert seen_again.individual == other.individual and not seen_again.new_individual
    (stranger,) = later.identify(_crops(7), enrol_new=False)
    assert stranger.individual == UNKNOWN and not stranger.new_individual
    assert len(later.gallery) == 3


def _answers(sightings) -> list[tuple]:
    return [(s.individual, s.similarity, s.new_individual, s.provisional) for s in sightings]


def test_a_match_to_a_merged_id_is_reported_under_its_survivor() -> None:
    gallery = Gallery()
    gallery.enrol("fish-new-a", np.eye(DIM)[1], provisional=True, first_seen_ns=1)
    gallery.enrol("fish-new-b", np.eye(DIM)[2], provisional=True, first_seen_ns=2)
    gallery.merge("fish-new-b", "fish-new-a")
    identifier = FishIdentifier(CodeBackend(), _card(), gallery, max_batch=2)
    (sighting,) = identifier.decide(identifier.embed(_crops(2)), sources=[SightingSource("c@9")])
    assert sighting.individual == "fish-new-a" and not sighting.new_individual
    assert sighting.kept_view and gallery.seen("c@9").individual == "fish-new-a"


class TableBackend(CodeBackend):
    """Embeds a crop as row ``code`` of a table of (not necessarily orthogonal) vectors."""

    def __init__(self, table: np.ndarray) -> None:
        super().__init__(table.shape[1])
        self.table = table.astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.table[batch[:, 0, 0, 0].astype(int)]


def test_a_provisional_fish_gathers_the_views_it_is_matched_by() -> None:
    # Three sightings of one new fish that drift: each is like the one before (cosine 0.6 >=
    # the threshold 0.5) but the third is unlike the first (0.2). With the second sighting
    # kept as a view, the third is the same fish; with one view it would be a new one.
    v0, v1, v2 = [1, 0, 0, 0], [0.6, 0.8, 0, 0], [0.2, 0.6, float(np.sqrt(0.6)), 0]
    known = [0, 0, 0, 1]
    identifier = FishIdentifier(
        TableBackend(np.array([v0, v1, v2, known])), _card(dim=4), Gallery(), max_batch=1
    )
    identifier.gallery.enrol("zf-known", np.array(known, np.float32))
    first, second, third = identifier.identify(_crops(0, 1, 2))
    assert first.new_individual and second.individual == third.individual == first.individual
    assert not third.new_individual
    assert identifier.gallery.entry(first.individual).n_embeddings == 3
    identifier.identify(_crops(3, 3))  # a known individual is matched, not changed
    assert identifier.gallery.entry("zf-known").n_embeddings == 1


def test_a_provisional_fish_keeps_at_most_provisional_views() -> None:
    identifier = FishIdentifier(CodeBackend(), _card(), Gallery(), max_batch=4)
    identifier.identify(_crops(*[2] * (PROVISIONAL_VIEWS + 5)))
    (entry,) = identifier.gallery.list()
    assert entry.provisional and entry.n_embeddings == PROVISIONAL_VIEWS


def test_wrong_card_or_gallery_dimension_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a fish model"):
        FishIdentifier(CodeBackend(), _card(task="plankton"), Gallery(), max_batch=1)
    gallery = Gallery()
    gallery.enrol("zf-a", np.eye(16)[0])
    with pytest.raises(ConfigError, match="16-d embeddings but model test-fish makes 8-d"):
        FishIdentifier(CodeBackend(), _card(), gallery, max_batch=1)
    with pytest.raises(ValueError, match="max_batch"):
        FishIdentifier(CodeBackend(), _card(), Gallery(), max_batch=0)


def test_committed_model_recognises_gallery_fish_and_enrols_strangers() -> None:
    from seawatch.contracts.card import ONNX_FILE, load_card
    from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
    from seawatch.models.fish.data import FishData
    from seawatch.models.fish.synthetic import make_individual, render_fish

    model = REPO / "models" / "fish"
    if not (model / ONNX_FILE).is_file():
        pytest.fail(f"the fish model is missing at {model}; run seawatch train fish")
    card = load_card(model)
    data = FishData.from_summary(card.training.data)
    gallery = Gallery.load(model / card.files["gallery"], dim=card.metrics["embedding_dim"])
    rng = np.random.default_rng(2024)  # renders no training or evaluation run used
    known = [make_individual(i, data.seed) for i in data.gallery_indices()[::10]]
    strangers = [make_individual(data.n_individuals + i, data.seed) for i in range(4)]
    with OnnxRuntimeBackend(model / ONNX_FILE, threads=1) as backend:
        identifier = FishIdentifier(backend, card, gallery, max_batch=8)
        crops = [identifier.model_input(render_fish(f, rng, height=80, width=200)) for f in known]
        sightings = identifier.identify(np.stack(crops), enrol_new=False)
        right = np.mean([s.individual == f.name for s, f in zip(sightings, known, strict=True)])
        assert right >= 0.8, right
        # two sightings of each stranger in one batch: first ones enrol, second ones match
        views = [identifier.model_input(render_fish(f, rng)) for _ in range(2) for f in strangers]
        sightings = identifier.identify(np.stack(views))
    first, second = sightings[:4], sightings[4:]
    assert sum(s.new_individual and s.provisional for s in first) >= 3, first
    assert sum(b.individual == a.individual for a, b in zip(first, second, strict=True)) >= 3
