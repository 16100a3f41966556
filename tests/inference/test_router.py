"""The task router on the committed models: one call per task, failures stay in their task."""

from __future__ import annotations

import numpy as np
import pytest

from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.errors import BackendError
from seawatch.contracts.evidence import thumbnail
from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.contracts.preprocess import planar_float32, prepare_roi
from seawatch.contracts.task import PreparedFrame
from seawatch.inference.factory import open_backend
from seawatch.inference.router import TaskRouter
from seawatch.ingest.segment import SegmentParams, measure_roi
from seawatch.models.fish.gallery import Gallery
from seawatch.models.fish.head import FishIdentifier
from seawatch.models.fish.synthetic import make_individuals, render_fish
from seawatch.models.otolith.head import OtolithDetector
from seawatch.models.otolith.synthetic import render_otolith
from seawatch.models.plankton.head import PlanktonClassifier
from seawatch.models.plankton.synthetic import render_roi


class _Failing:
    """A backend whose every call fails, as a lost GPU would."""

    name = "failing"

    def run(self, batch):
        raise BackendError("device lost")

    def run_outputs(self, batch):
        raise BackendError("device lost")

    def close(self) -> None:
        pass


def _head(kind, directory, **kwargs):
    card = load_card(directory)
    backend = open_backend("onnxruntime", directory / ONNX_FILE, threads=1)
    return kind(backend, card, max_batch=4, **kwargs)


@pytest.fixture(scope="module")
def router(model_dir, otolith_model_dir, fish_model_dir, tmp_path_factory):
    fish_card = load_card(fish_model_dir)
    gallery = Gallery.load(fish_model_dir / fish_card.files["gallery"])
    gallery_path = tmp_path_factory.mktemp("gallery") / "g.npz"
    return TaskRouter(
        [
            _head(PlanktonClassifier, model_dir, top_k=3),
            _head(OtolithDetector, otolith_model_dir),
            _head(FishIdentifier, fish_model_dir, gallery=gallery, gallery_path=gallery_path),
        ]
    )


def _prepared(task: str, i: int, router: TaskRouter, rng) -> PreparedFrame:
    meta = FrameMeta(
        instrument=f"{task}-1",
        task=task,
        captured_at_ns=1000 + i,
        frame_kind=FrameKind.ROI,
        content_type="image/png",
        specimen_id=f"s{i}" if task == "otolith" else None,
    )
    frame = Frame(meta, SourceRef(f"frames.{task}", 0, i), b"", 0)
    if task == "plankton":
        obj = measure_roi(render_roi("copepod", rng), SegmentParams(), None)
        return PreparedFrame(frame, [obj], [prepare_roi(obj.image, 64)], 1.0)
    if task == "otolith":
        image = render_otolith(rng, anomaly="broken" if i % 2 else None)
        return PreparedFrame(
            frame, [], [router.heads["otolith"].input8(image)], 1.0, thumbnail(image)
        )
    image = render_fish(make_individuals(3, 77)[i % 3], rng)
    return PreparedFrame(frame, [], [router.heads["fish"].input8(image)], 1.0)


def test_each_task_gets_its_own_answer(router):
    rng = np.random.default_rng(0)
    frames = [
        _prepared(t, i, router, rng) for i, t in enumerate(["plankton", "otolith", "fish"] * 4)
    ]
    routed = router.route(frames)
    assert not routed.failed and sorted(routed.results) == list(range(12))
    for i, prepared in enumerate(frames):
        result, card = routed.results[i]
        task = prepared.frame.meta.task
        assert card.task == task
        assert bool(result.objects) == (task == "plankton")
        assert (result.otolith is not None) == (task == "otolith")
        assert (result.fish is not None) == (task == "fish")
        if result.otolith is not None and result.otolith.anomaly:
            assert [p for p, _ in result.evidence] == [
                result.otolith.thumbnail,
                result.otolith.heatmap,
            ]
    assert router.heads["fish"].gallery_path.is_file()  # new fish were enrolled and saved


def test_stage_makes_the_whole_frame_tensors_that_prepare_would(router):
    """Whole-frame inputs stay uint8 until staged; the batch conversion changes no value."""
    rng = np.random.default_rng(2)
    frames = [_prepared(t, i, router, rng) for i, t in enumerate(["otolith", "fish"] * 3)]
    assert all(f.crops[0].dtype == np.uint8 and f.crops[0].ndim == 3 for f in frames)
    work = {item.task: item for item in router.stage(frames)}
    for task in ("otolith", "fish"):
        crops = [f.crops[0] for f in frames if f.frame.meta.task == task]
        expected = np.stack([planar_float32(c) for c in crops])
        tensor = work[task].tensor
        assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
        np.testing.assert_array_equal(tensor, expected)
        assert tensor.shape[1] == 3 and tensor.shape[0] == 3


def test_a_failing_backend_fails_only_its_own_task(router):
    rng = np.random.default_rng(1)
    frames = [_prepared(t, i, router, rng) for i, t in enumerate(["plankton", "otolith"] * 3)]
    original = router.heads["otolith"].backend
    router.heads["otolith"].backend = _Failing()
    try:
        routed = router.route(frames)
    finally:
        router.heads["otolith"].backend = original
    failed = sorted(i for i, _ in routed.failed)
    assert failed == [1, 3, 5] and "device lost" in str(routed.failed[0][1])
    assert sorted(routed.results) == [0, 2, 4]


def test_infer_runs_only_the_backends_and_finish_decides(router):
    """The inference thread's step leaves the gallery alone: matching and enrolment happen
    in ``finish``, on the loop thread, in batch order."""
    rng = np.random.default_rng(3)
    frames = [_prepared(t, i, router, rng) for i, t in enumerate(["fish", "plankton"] * 3)]
    work = router.stage(frames)
    assert [(w.task, w.positions) for w in work] == [("fish", [0, 2, 4]), ("plankton", [1, 3, 5])]
    assert work[0].tensor.shape == (3, 3, router.heads["fish"].height, router.heads["fish"].width)
    assert work[1].tensor.shape == (3, 1, 64, 64)
    gallery = router.heads["fish"].gallery
    before = [(e.id, e.n_embeddings) for e in gallery.list()]
    router.infer(work)
    assert all(w.outputs is not None and w.error is None and w.infer_ms > 0 for w in work)
    assert [(e.id, e.n_embeddings) for e in gallery.list()] == before
    routed = router.finish(frames, work)
    assert sorted(routed.results) == list(range(6)) and not routed.failed
    assert routed.results[0][0].fish is not None and routed.results[1][0].objects


def test_a_task_without_a_head_fails_its_frames_at_staging(router):
    rng = np.random.default_rng(4)
    frames = [_prepared(t, i, router, rng) for i, t in enumerate(["plankton", "fish"])]
    fish = router.heads.pop("fish")
    try:
        work = router.stage(frames)
        router.infer(work)
        routed = router.finish(frames, work)
    finally:
        router.heads["fish"] = fish
    assert sorted(routed.results) == [0]
    assert [i for i, _ in routed.failed] == [1] and "tasks.fish" in str(routed.failed[0][1])


def test_flagged_otoliths_carry_their_evidence(router):
    """A threshold under every score flags every specimen: each gets thumbnail + heat map."""
    rng = np.random.default_rng(2)
    head = router.heads["otolith"]
    original = head.threshold
    head.threshold = -1e9
    try:
        frames = [_prepared("otolith", i, router, rng) for i in range(3)]
        routed = router.route(frames)
    finally:
        head.threshold = original
    for i, prepared in enumerate(frames):
        result, _ = routed.results[i]
        assert result.otolith.anomaly
        paths = [path for path, _ in result.evidence]
        assert paths == [result.otolith.thumbnail, result.otolith.heatmap]
        assert paths[0].startswith("otolith/otolith-1/") and paths[1].endswith("_heatmap.jpg")
        thumb, overlay = (image for _, image in result.evidence)
        assert thumb is prepared.thumbnail and overlay.shape == thumb.shape


@pytest.mark.parametrize("blas_threads", [1, 2])
def test_build_router_limits_numpys_blas_threads(tmp_path, model_dir, blas_threads):
    """A second BLAS thread only spins against the model's: the daemon sets the limit."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from seawatch.config import load_settings
    from seawatch.daemon import build_router

    settings = load_settings(
        tasks={
            "plankton": {"model_dir": str(model_dir)},
            "otolith": {"enabled": False},
            "fish": {"enabled": False},
        },
        inference__blas_threads=blas_threads,
        storage__local__path=str(tmp_path / "store.db"),
    )
    with threadpool_limits(None):  # restores this process's limits afterwards
        router = build_router(settings)
        try:
            blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
            assert blas, "numpy has no BLAS thread pool to limit"
            assert {p["num_threads"] for p in blas} == {blas_threads}
        finally:
            router.close()
