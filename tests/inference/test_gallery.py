"""The fish gallery: enrol, list, remove, match, and its one-file persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.gallery import NEW_PREFIX, Gallery, new_id


def _unit(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_enrol_list_remove_and_match_use_the_best_view() -> None:
    rng = np.random.default_rng(0)
    a, b = _unit(rng, 3), _unit(rng, 2)
    gallery = Gallery()
    gallery.enrol("zf-a", a)
    gallery.enrol("zf-b", b, provisional=True)
    assert gallery.dim == 8 and len(gallery) == 2 and "zf-a" in gallery
    entries = {e.id: e for e in gallery.list()}
    assert entries["zf-a"].n_embeddings == 3 and not entries["zf-a"].provisional
    assert entries["zf-b"].provisional and entries["zf-b"].enrolled_at
    # a query equal to one view of zf-b scores 1.0 for it: the max over views
    (match,) = gallery.match(b[1])
    assert match.individual == "zf-b" and match.similarity == pytest.approx(1.0, abs=1e-6)
    scores = gallery.scores(a[2:3])
    assert scores.shape == (1, 2)
    assert scores[0, 1] == pytest.approx(float((b @ a[2]).max()), abs=1e-6)
    gallery.enrol("zf-b", b[:1])  # more views; a confirmed enrolment ends 'provisional'
    assert gallery.entry("zf-b").n_embeddings == 3 and not gallery.entry("zf-b").provisional
    gallery.remove("zf-a")
    assert gallery.ids == ["zf-b"]
    assert gallery.match(a[0])[0].individual == "zf-b"
    with pytest.raises(ConfigError, match="not in the gallery"):
        gallery.remove("zf-a")


def test_new_ids_derive_from_the_enrolling_sighting_without_a_counter() -> None:
    gallery, other = Gallery(4), Gallery(4)  # two workers that never talk to each other
    first = gallery.enrol_new(np.eye(4)[0], source="cam-1@100", first_seen_ns=100)
    second = other.enrol_new(np.eye(4)[1], source="cam-2@100", first_seen_ns=100)
    assert first.id == new_id("cam-1@100") and first.id.startswith(f"{NEW_PREFIX}-")
    assert len(first.id) == len(NEW_PREFIX) + 13 and first.id != second.id
    assert first.provisional and first.first_seen_ns == 100 and first.source == "cam-1@100"
    # the same sighting again (a replayed frame) is the same id and adds no view
    again = gallery.enrol_new(np.eye(4)[0], source="cam-1@100")
    assert again.id == first.id and again.n_embeddings == 1 and len(gallery) == 1
    answer = gallery.seen("cam-1@100")
    assert answer is not None and answer.individual == first.id and answer.new_individual
    assert gallery.seen("cam-9@1") is None
    # a clash of two sightings' hashes (forced here) gives the later one a longer id
    gallery.enrol(new_id("cam-3@5"), np.eye(4)[2], provisional=True, source="cam-x@0")
    clash = gallery.enrol_new(np.eye(4)[3], source="cam-3@5")
    assert clash.id == new_id("cam-3@5", 16) and clash.id in gallery
    # without a source the id derives from the embedding
    assert Gallery(4).enrol_new(np.eye(4)[1]).id == Gallery(4).enrol_new(np.eye(4)[1]).id


def test_merges_resolve_to_the_survivor_and_can_be_undone() -> None:
    gallery = Gallery(4)
    for i, name in enumerate(("a", "b", "c")):
        gallery.enrol(name, np.eye(4)[i], provisional=True)
    gallery.merge("c", "b")
    gallery.merge("b", "a")
    assert gallery.resolve("c") == gallery.resolve("b") == "a" == gallery.resolve("a")
    assert gallery.entry("c").merged_into == "b"
    (match,) = gallery.match(np.eye(4)[2])  # a merged id's views still match (for "a")
    assert match.individual == "c" and gallery.resolve(match.individual) == "a"
    with pytest.raises(ConfigError, match="resolves to it"):
        gallery.merge("a", "c")
    with pytest.raises(ConfigError, match="not in the gallery"):
        gallery.merge("a", "zz")
    gallery.unmerge("b")
    assert gallery.resolve("c") == "b" and gallery.resolve("b") == "b"
    gallery.set_merged_into("b", "gone")  # a survivor not (yet) read: the id stands
    assert gallery.resolve("b") == "b"


def test_save_and_load_round_trip_atomically(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gallery = Gallery()
    gallery.enrol("zf-a", _unit(rng, 2), enrolled_at="2024-05-01T00:00:00+00:00")
    first = gallery.enrol_new(_unit(rng, 1), source="cam@1", similarity=0.25, first_seen_ns=1)
    gallery.enrol(first.id, _unit(rng, 1), provisional=True, source="cam@2", similarity=0.8)
    twin = gallery.enrol_new(_unit(rng, 1), source="cam@3", first_seen_ns=3)
    gallery.merge(twin.id, first.id)
    path = gallery.save(tmp_path / "gallery.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.npz"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    gallery.save(path)
    assert path.stat().st_mode & 0o777 == 0o640  # a rewrite keeps the file's permissions
    loaded = Gallery.load(path, dim=8)
    assert loaded.list() == gallery.list()
    assert loaded.resolve(twin.id) == first.id and loaded.entry(first.id).first_seen_ns == 1
    assert loaded.seen("cam@2") == gallery.seen("cam@2")
    assert loaded.seen("cam@2").similarity == pytest.approx(0.8)
    query = _unit(rng, 5)
    np.testing.assert_allclose(loaded.scores(query), gallery.scores(query), atol=1e-6)
    empty = Gallery.load(Gallery(16).save(tmp_path / "empty.npz"))
    assert len(empty) == 0 and empty.dim == 16


def test_corrupt_missing_or_inconsistent_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "gallery.npz"
    bad.write_bytes(b"PK\x03\x04 this is no zip")
    with pytest.raises(ConfigError, match="corrupt"):
        Gallery.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Gallery.load(tmp_path / "missing.npz")
    np.savez(bad, embeddings=np.zeros((2, 4)))  # an npz, but not a gallery
    with pytest.raises(ConfigError, match="corrupt"):
        Gallery.load(bad)
    gallery = Gallery()
    gallery.enrol("zf-a", np.eye(4)[:2])
    gallery.save(bad)
    with np.load(bad) as data:
        arrays = dict(data)
    arrays["owner"] = np.array([0, 5])  # points at an individual that does not exist
    np.savez(bad, **arrays)
    with pytest.raises(ConfigError, match="inconsistent"):
        Gallery.load(bad)


def test_dimension_mismatch_is_a_config_error(tmp_path: Path) -> None:
    gallery = Gallery()
    gallery.enrol("zf-a", np.eye(8)[:2])
    path = gallery.save(tmp_path / "gallery.npz")
    with pytest.raises(ConfigError, match="8-d embeddings but the model makes 128-d"):
        Gallery.load(path, dim=128)
    with pytest.raises(ConfigError, match="does not match the gallery's 8"):
        gallery.enrol("zf-b", np.ones((1, 16)))
    with pytest.raises(ConfigError, match="does not match"):
        gallery.match(np.ones((1, 4)))
    with pytest.raises(ConfigError, match="at least one embedding"):
        gallery.enrol("zf-c", np.zeros((0, 8)))


def test_a_format_1_file_loads_without_sources_or_merges(tmp_path: Path) -> None:
    path = tmp_path / "v1.npz"
    np.savez(
        path,
        embeddings=np.eye(4, dtype=np.float32)[:3],
        owner=np.array([0, 0, 1]),
        ids=np.array(["zf-a", "fish-new-0001"]),
        provisional=np.array([False, True]),
        enrolled_at=np.array(["2024-01-01T00:00:00+00:00"] * 2),
        dim=np.array(4),
        next_new=np.array(2),
        format=np.array(1),
    )
    gallery = Gallery.load(path, dim=4)
    assert [(e.id, e.n_embeddings, e.provisional, e.merged_into) for e in gallery.list()] == [
        ("zf-a", 2, False, None),
        ("fish-new-0001", 1, True, None),
    ]
