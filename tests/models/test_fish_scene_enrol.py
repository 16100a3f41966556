"""Detector-style gallery views (scene_enrol.py, ``seawatch gallery enrol-scenes``), with the
committed fish model, its gallery and the daemon's own whole-frame detector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.preprocess import planar_batch
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.models.fish.command import gallery_group
from seawatch.models.fish.frame_detect import detect_fish
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.head import FishIdentifier
from seawatch.models.fish.scene_enrol import (
    draw_scene,
    enrol_scene_views,
    generator_individual,
    scene_views,
)
from seawatch.models.fish.tank_scene import iou

MODEL = Path(__file__).resolve().parents[2] / "models" / "fish"
FEW = ["zf-0-0003", "zf-0-0040", "zf-0-0194"]


def _head(gallery: Gallery, backend: OnnxRuntimeBackend) -> FishIdentifier:
    card = load_card(MODEL)
    return FishIdentifier(backend, card, gallery, max_batch=64, whole_frames=True)


@pytest.fixture(scope="module")
def backend() -> Iterator[OnnxRuntimeBackend]:
    with OnnxRuntimeBackend(MODEL / ONNX_FILE, threads=1) as b:
        yield b


@pytest.fixture(scope="module")
def committed() -> Gallery:
    return Gallery.load(MODEL / "gallery.npz")


def test_generator_individual_reads_generator_names_only() -> None:
    fish = generator_individual("zf-0-0194")
    assert fish is not None and fish.name == "zf-0-0194" and fish.index == 194
    assert generator_individual("fish-new-0123456789ab") is None
    assert generator_individual("zf-x-12") is None


def test_a_lone_fish_is_found_at_its_drawn_box() -> None:
    target = generator_individual("zf-0-0003")
    assert target is not None
    image, box = draw_scene(target, [], np.random.default_rng(5))
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8 and box is not None
    found = detect_fish(image)
    assert len(found) == 1 and iou(found[0].box, box) > 0.7


def test_views_are_of_the_intended_fish(committed: Gallery, backend) -> None:
    head = _head(committed, backend)
    cast = [generator_individual(i) for i in committed.ids[:20]]
    own = total = 0
    for name in FEW:
        rng = np.random.default_rng([7_180_001, committed.ids.index(name)])
        views = scene_views(head, name, cast, rng, views=3, scenes=12)  # type: ignore[arg-type]
        assert views.individual == name and len(views.inputs) == 3
        embeddings = head.embed(planar_batch(list(views.inputs)))
        best = [m.individual for m in committed.match(embeddings)]
        own, total = own + best.count(name), total + len(best)
    # the committed model names most of them as their own fish among its 168
    assert own / total >= 0.7, (own, total)


def test_count_shape_and_scene_budget(committed: Gallery, backend) -> None:
    head = _head(committed, backend)
    cast = [generator_individual(i) for i in committed.ids[:10]]
    rng = np.random.default_rng(7_180_002)
    views = scene_views(head, "zf-0-0040", cast, rng, views=4, scenes=20)  # type: ignore[arg-type]
    assert views.inputs.shape == (4, head.height, head.width, 3)
    assert views.inputs.dtype == np.uint8 and len(views.boxes) == 4
    assert 4 <= views.scenes <= 20
    one = scene_views(head, "zf-0-0040", cast, rng, views=4, scenes=1)  # type: ignore[arg-type]
    assert one.scenes == 1 and len(one.inputs) <= 4
    with pytest.raises(ValueError, match="not a generator individual"):
        scene_views(head, "fish-new-0123456789ab", cast, rng, views=1, scenes=1)  # type: ignore[arg-type]


def test_enrolment_adds_views_seeded_and_repeatable(committed: Gallery, backend) -> None:
    def enlarged(seed: int) -> Gallery:
        gallery = committed.only(set(FEW))
        gallery.enrol("fish-new-0123456789ab", gallery.views(FEW[0])[0][:1], provisional=True)
        added = enrol_scene_views(_head(gallery, backend), views=2, seed=seed)
        assert added == dict.fromkeys(FEW, 2)  # the provisional id is left as it was
        return gallery

    first, again, other = enlarged(7_180_003), enlarged(7_180_003), enlarged(7_180_004)
    for name in FEW:
        assert first.entry(name).n_embeddings == 5
        old = committed.views(name)[0]
        np.testing.assert_array_equal(first.views(name)[0][:3], old)
        np.testing.assert_array_equal(first.views(name)[0], again.views(name)[0])
        assert not np.allclose(first.views(name)[0][3:], other.views(name)[0][3:])
    assert first.entry("fish-new-0123456789ab").n_embeddings == 1
    with pytest.raises(ValueError, match="views"):
        enrol_scene_views(_head(committed.only(set(FEW)), backend), views=0, seed=1)


def test_command_writes_a_new_gallery_and_leaves_the_source(
    committed: Gallery, tmp_path: Path
) -> None:
    source, out = tmp_path / "small.npz", tmp_path / "scenes.npz"
    committed.only(set(FEW[:2])).save(source)
    before = source.read_bytes()
    runner = CliRunner()
    args = ["enrol-scenes", "--model", str(MODEL), "--gallery", str(source), "--out", str(out)]
    result = runner.invoke(gallery_group, [*args, "--views", "1", "--seed", "7180005"])
    assert result.exit_code == 0, result.output
    assert source.read_bytes() == before
    written = Gallery.load(out)
    assert [written.entry(n).n_embeddings for n in FEW[:2]] == [4, 4]
    result = runner.invoke(gallery_group, [*args[:-1], str(source)])
    assert result.exit_code != 0 and "source" in result.output


def test_min_own_keeps_only_views_like_the_fish(committed: Gallery, backend) -> None:
    head = _head(committed, backend)
    cast = [generator_individual(i) for i in committed.ids]
    own = committed.views("zf-0-0088")[0]
    position = committed.ids.index("zf-0-0088")

    def draw(min_own: float | None):  # the builder's draws for this fish at seed 7,180,000
        rng = np.random.default_rng([7_180_000, position, 28])
        return scene_views(head, "zf-0-0088", cast, rng, views=6, scenes=30, min_own=min_own)  # type: ignore[arg-type]

    loose, floored = draw(None), draw(0.4)
    likeness = (head.embed(planar_batch(list(loose.inputs))) @ own.T).max(1)
    kept = (head.embed(planar_batch(list(floored.inputs))) @ own.T).max(1)
    assert likeness.min() < 0.4  # these draws cut crops that do not look like the fish
    assert len(floored.inputs) >= 1 and kept.min() >= 0.4
    assert draw(1.01).inputs.shape[0] == 0  # no view is that close: none kept, none enrolled
    # the same draws: every loose view the floor passes is kept, in order, the others skipped
    passing = loose.inputs[likeness >= 0.4]
    np.testing.assert_array_equal(floored.inputs[: len(passing)], passing)
