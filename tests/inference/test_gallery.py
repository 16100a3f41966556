"""The fish gallery: enrol, list, remove, match, and its one-file persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seawatch.contracts.errors import ConfigError
from seawatch.models.fish.gallery import NEW_PREFIX, Gallery


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


def test_new_ids_are_unique_provisional_and_never_reused() -> None:
    gallery = Gallery(4)
    first = gallery.enrol_new(np.eye(4)[0])
    second = gallery.enrol_new(np.eye(4)[1])
    assert first.id == f"{NEW_PREFIX}-0001" and second.id == f"{NEW_PREFIX}-0002"
    assert first.provisional and second.provisional
    gallery.remove(second.id)
    gallery.enrol(f"{NEW_PREFIX}-0003", np.eye(4)[2])  # someone took the next name by hand
    assert gallery.enrol_new(np.eye(4)[3]).id == f"{NEW_PREFIX}-0004"


def test_save_and_load_round_trip_atomically(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gallery = Gallery()
    gallery.enrol("zf-a", _unit(rng, 2), enrolled_at="2024-05-01T00:00:00+00:00")
    gallery.enrol_new(_unit(rng, 1))
    path = gallery.save(tmp_path / "gallery.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.npz"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    gallery.save(path)
    assert path.stat().st_mode & 0o777 == 0o640  # a rewrite keeps the file's permissions
    loaded = Gallery.load(path, dim=8)
    assert loaded.list() == gallery.list()
    assert loaded.next_new == gallery.next_new == 2
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
