"""The shared gallery's records: written from a gallery, applied to another, idempotently."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.gallery_records import (
    INDIVIDUAL,
    VIEW,
    RecordApplier,
    SightingSource,
    individual_record,
    merge_record,
    renamed_record,
    unmerge_record,
    view_key,
    view_record,
)

DIM = 4
FIRST, SECOND = SightingSource("cam@1", 1, "frames.fish/0/7"), SightingSource("cam@2", 2)


def _writer() -> tuple[Gallery, list[tuple[str, bytes]]]:
    """A worker's gallery with one new fish and one further view of it, and its records."""
    gallery = Gallery(DIM)
    entry = gallery.enrol_new(np.eye(DIM)[0], source=FIRST.uid, similarity=0.3, first_seen_ns=1)
    gallery.enrol(entry.id, np.eye(DIM)[1], provisional=True, source=SECOND.uid, similarity=0.9)
    records = [
        individual_record(gallery, entry.id, worker="w1", model="m", source=FIRST),
        view_record(gallery, entry.id, SECOND, worker="w1", model="m"),
    ]
    return gallery, records


def test_records_carry_the_individual_and_its_views_under_keys_of_their_own() -> None:
    gallery, [(key, raw), (vkey, vraw)] = _writer()
    (individual,) = gallery.ids
    value, view = json.loads(raw), json.loads(vraw)
    assert key == individual and vkey == view_key(individual, SECOND.uid) != key
    assert value["kind"] == INDIVIDUAL and value["provisional"] and value["merged_into"] is None
    assert value["source"] == {"uid": "cam@1", "captured_at_ns": 1, "ref": "frames.fish/0/7"}
    assert value["similarity"] == 0.3 and value["first_seen_ns"] == 1 and value["worker"] == "w1"
    assert view["kind"] == VIEW and view["individual"] == individual and view["similarity"] == 0.9


def test_an_enrolment_names_what_its_writer_had_read_and_a_reader_ignores_it() -> None:
    gallery, _ = _writer()
    (individual,) = gallery.ids
    _, raw = individual_record(
        gallery, individual, worker="w1", model="m", source=FIRST, read_to={0: 41}
    )
    assert json.loads(raw)["read_to"] == {"0": 41}
    assert "read_to" not in json.loads(
        individual_record(gallery, individual, worker="w", model="m")[1]
    )
    reader = Gallery(DIM)
    assert RecordApplier(reader).apply(individual, raw).new and reader.ids == [individual]


def test_applying_twice_or_reading_back_changes_nothing() -> None:
    written, records = _writer()
    reader = Gallery(DIM)
    applier = RecordApplier(reader)
    first = [applier.apply(k, v) for k, v in records]
    again = [applier.apply(k, v) for k, v in records]  # the whole topic read once more
    (individual,) = reader.ids
    assert first[0].new and not again[0].new and first[0].provisional
    assert reader.entry(individual) == written.entry(individual)
    np.testing.assert_allclose(reader.views(individual)[0], written.views(individual)[0])
    assert reader.seen("cam@2").individual == individual and reader.seen("cam@1").new_individual


def test_a_view_read_before_its_individual_waits_for_it() -> None:
    _, [individual, view] = _writer()
    reader = Gallery(DIM)
    applier = RecordApplier(reader)
    assert applier.apply(*view) is None and len(reader) == 0  # compaction kept a later record
    applier.apply(*individual)
    assert reader.entry(individual[0]).n_embeddings == 2


def test_merges_tombstones_and_bad_records() -> None:
    written, [(key, raw), _] = _writer()
    other = written.enrol_new(np.eye(DIM)[2], source="cam@0", first_seen_ns=0)
    written.merge(key, other.id)
    merged = individual_record(written, key, worker="w2", model="m", merge_similarity=0.8)
    reader = Gallery(DIM)
    applier = RecordApplier(reader)
    applier.apply(key, raw)
    applier.apply(other.id, individual_record(written, other.id, worker="w2", model="m")[1])
    applied = applier.apply(*merged)
    assert applied.merge_changed and applied.merged_into == other.id
    assert applied.merged_by == "w2" and applied.merge_similarity == 0.8
    assert reader.resolve(key) == other.id
    assert applier.apply(key, None).kind == "removed" and key not in reader  # a tombstone
    assert applier.apply("fish-x/abc", None) is None  # a view's tombstone: nothing to do
    for bad in (b"not json", b'{"v": 9}', json.dumps({"v": 1, "kind": "view"}).encode()):
        assert applier.apply("fish-x", bad) is None
    wrong_dim = json.loads(raw) | {"dim": 2}  # 4 floats read as two 2-d views: another model
    assert applier.apply(key, json.dumps(wrong_dim).encode()) is None
    assert applier.skipped == 4


@pytest.mark.parametrize("dim", [3, 0])
def test_embeddings_that_are_not_whole_views_are_skipped(dim: int) -> None:
    _, [(key, raw), _] = _writer()
    applier = RecordApplier(Gallery())
    assert applier.apply(key, json.dumps(json.loads(raw) | {"dim": dim}).encode()) is None
    assert applier.skipped == 1


def test_a_persons_merge_and_rename_records_apply_as_any_merge() -> None:
    gallery, [(a, raw), _] = _writer()
    other = gallery.enrol_new(np.eye(DIM)[2], source="cam@3", first_seen_ns=3).id
    _, other_raw = individual_record(gallery, other, worker="w1", model="m")
    with_read_to = individual_record(gallery, a, worker="w1", model="m", read_to={0: 4})[1]
    merged = json.loads(merge_record(with_read_to, into=other, worker="review:rolf", rule="person"))
    assert (merged["individual"], merged["merged_into"], merged["merged_by"]) == (
        a, other, "review:rolf"
    )  # fmt: skip
    assert merged["merge_rule"] == "person" and merged["worker"] == "review:rolf"
    assert merged["embeddings"] == json.loads(raw)["embeddings"] and "read_to" not in merged

    name, renamed_raw = renamed_record(with_read_to, individual="Nemo", worker="review:rolf")
    renamed, base = json.loads(renamed_raw), json.loads(with_read_to)
    assert name == renamed["individual"] == "Nemo" and renamed["provisional"] is False
    assert renamed["merged_into"] is None and "merge_rule" not in renamed
    assert (renamed["embeddings"], renamed["source"]) == (base["embeddings"], base["source"])
    into_nemo = merge_record(raw, into="Nemo", worker="review:rolf", rule="person")

    reader = Gallery(DIM)
    applier = RecordApplier(reader)
    applier.apply(a, raw), applier.apply(other, other_raw)
    done = applier.apply(a, json.dumps(merged).encode())
    assert done.merge_changed and done.merge_rule == "person" and done.merged_by == "review:rolf"
    assert reader.resolve(a) == other
    applier.apply("Nemo", renamed_raw), applier.apply(a, into_nemo)
    assert reader.resolve(a) == "Nemo" and not reader.entry("Nemo").provisional
    applier.apply(a, unmerge_record(into_nemo, worker="review:rolf"))
    assert reader.resolve(a) == a  # a person's merge is undone like any other
    with pytest.raises(ValueError, match="itself"):
        merge_record(raw, into=a, worker="review:rolf", rule="person")
    with pytest.raises(ValueError, match="already its name"):
        renamed_record(raw, individual=a, worker="review:rolf")
    with pytest.raises(ValueError, match="not an individual record"):
        merge_record(_writer()[1][1][1], into=other, worker="review:rolf", rule="person")
