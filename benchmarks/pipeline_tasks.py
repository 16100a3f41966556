"""The per-task parts of ``benchmarks/pipeline.py``: frames, models, model inputs, naive script.

plankton: flow-imager ROI and in-situ full frames (segmented into objects); otolith: one
photographed sagitta per frame (anomaly score + heat map); fish: one side view per frame
(re-identification embedding). Each task's model inputs are made by the daemon's own
prepare stage (``FramePreparer`` with the task heads' own ``prepare``).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seawatch.config import Settings, resolve_model_dir
from seawatch.contracts.card import ONNX_FILE, load_card
from seawatch.contracts.frames import Frame, SourceRef
from seawatch.contracts.preprocess import batch_tensor, prepare_roi, to_gray8
from seawatch.daemon import build_router
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.decode import DecodeLimits, decode_image
from seawatch.ingest.prepare import FramePreparer
from seawatch.ingest.publish import FrameMessage
from seawatch.ingest.segment import SegmentParams, measure_roi, segment_full
from seawatch.models.synthetic_stream import synthetic_stream

TASKS = ("plankton", "otolith", "fish")
PLANKTON_DIR, FISH_DIR = Path("models/plankton"), Path("models/fish")
OTOLITH_DIR = Path("models/otolith")


@dataclass(frozen=True)
class Models:
    """The model directory of every task, and how the otolith one came to be."""

    plankton: Path
    otolith: Path | None  # None: otolith not served (not benchmarked, none given)
    fish: Path
    otolith_source: str | None

    def of(self, task: str) -> Path:
        model_dir = getattr(self, task)
        if model_dir is None:
            raise RuntimeError(f"no {task} model for this run")
        return model_dir


def otolith_model(given: Path | None, tmp: Path, build: str) -> tuple[Path, str]:
    """``--otolith-model DIR``; else ``build`` ``committed``: the committed ``models/otolith``;
    else an artifact trained into ``tmp``: ``quick`` as the tests' ``otolith_model_dir``
    fixture does (a 10 k-parameter net on 64 px inputs, far cheaper than a served one), or
    ``full-arch``: the default training plan's architecture and input size trained for
    seconds (the served model's cost, meaningless scores)."""
    if given is not None:
        return resolve_model_dir(given), f"given: {given}"
    if build == "committed":
        return resolve_model_dir(OTOLITH_DIR), f"committed: {OTOLITH_DIR}"
    from seawatch.models.otolith.train import QUICK, Plan, train_otolith

    if build == "quick":
        plan, source = QUICK, "quick artifact (train_otolith(quick=True), as tests/conftest.py)"
    else:
        sizes = {f: getattr(QUICK, f) for f in Plan.__dataclass_fields__ if f.startswith("n_")}
        plan = Plan(**sizes, epochs=1, teacher_epochs=1, batch_size=16, ablation=False)
        source = "full-arch artifact (default Plan architecture/input, QUICK data, 1 epoch)"
    out = tmp / f"otolith-{build}"
    train_otolith(out, plan=plan, command=f"benchmarks/pipeline.py ({build})")
    return out, f"{source}: not a served model"


def served_dir(task: str, model_dir: Path) -> Path:
    """The artifact the daemon's head serves for ``task`` on ONNX Runtime CPU: for otolith the
    graph of the views ``auto`` picks (``tasks.otolith.options.views``), else ``model_dir``;
    the limit and the peer time the same graph as the pipeline."""
    if task != "otolith":
        return model_dir
    from seawatch.models.otolith.serving_views import recommended_views, serving_dir

    card = load_card(model_dir)
    views, _ = recommended_views(card, "onnxruntime")
    return serving_dir(model_dir, card, views)


def task_messages(task: str, n: int, *, seed: int, full_share: float) -> list[FrameMessage]:
    """``n`` frames of one task from the synthetic instrument stream."""
    shares = {"otolith": {"otolith_share": 1.0}, "fish": {"fish_share": 1.0}}.get(task, {})
    start_ns = time.time_ns() - n * 10**6
    stream = synthetic_stream(n, seed=seed, full_share=full_share, start_ns=start_ns, **shares)
    messages = list(stream)
    wrong = {m.meta.task for m in messages} - {task}
    if wrong:
        raise RuntimeError(f"the {task} stream holds {sorted(wrong)} frames too")
    return messages


def model_inputs(settings: Settings, messages: list[FrameMessage]) -> np.ndarray:
    """Every frame's model inputs as one tensor, made by the pipeline's own prepare stage
    and stacked by the router's own ``stage`` (one task per run, so one tensor)."""
    with tempfile.TemporaryDirectory() as tmp:  # the fish head seeds a working gallery here
        local = settings.storage.local.model_copy(update={"path": Path(tmp) / "inputs.db"})
        storage = settings.storage.model_copy(update={"local": local})
        router = build_router(settings.model_copy(update={"storage": storage}))
        preparer = FramePreparer(settings.ingest, router.heads)
        try:
            prepared = [
                preparer.prepare_frame(Frame(m.meta, SourceRef("bench", 0, i), m.value, 0, 0))
                for i, m in enumerate(messages)
            ]
            (work,) = router.stage(prepared)
        finally:
            preparer.close()
            router.close()
    return work.tensor


def bench_naive(settings: Settings, task: str, n: int, models: Models, threads: int) -> float:
    """The straightforward script: poll one, decode, prepare, infer batch 1, insert + commit,
    commit the offset. For otolith and fish it stores the first output value only (no heat
    map evidence, no gallery match), so it is, if anything, faster than a real one."""
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    served = served_dir(task, models.of(task))
    card = load_card(served)
    backend = OnnxRuntimeBackend(served / ONNX_FILE, threads=threads)
    whole = _whole_frame(task, card)
    db = sqlite3.connect(settings.storage.local.path.with_name(f"naive-{task}.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS objects (frame TEXT, idx INT, label TEXT, p REAL)")
    consumer = KafkaConsumer(
        *settings.kafka.topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=f"naive-{task}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
    )
    params, limits, done, started = SegmentParams(), DecodeLimits(), 0, None
    while done < n:
        for records in consumer.poll(timeout_ms=500, max_records=1).values():
            for r in records:
                started = started or time.perf_counter()
                headers = dict(r.headers)
                image = decode_image(r.value, headers["content-type"].decode(), limits)
                if whole is not None:
                    inputs = [(0, whole(image)[None])]
                else:
                    inputs = _plankton_inputs(image, headers, params, card.input.size)
                for index, tensor in inputs:
                    out = backend.run(tensor)
                    k = int(out[0].argmax()) if card.class_names else 0
                    label = card.class_names[k] if card.class_names else task
                    row = (f"{r.partition}/{r.offset}", index, label, float(out[0].ravel()[k]))
                    db.execute("INSERT INTO objects VALUES (?,?,?,?)", row)
                db.commit()
                offset = OffsetAndMetadata(r.offset + 1, None, -1)
                consumer.commit({TopicPartition(r.topic, r.partition): offset})
                done += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    db.close()
    backend.close()
    return elapsed


def _whole_frame(task: str, card):
    if task == "otolith":
        from seawatch.models.otolith.head import prepare_otolith

        return lambda image: prepare_otolith(image, card.input.size)
    if task == "fish":
        from seawatch.models.fish.head import prepare_fish

        return lambda image: prepare_fish(image, card.input.height, card.input.width)
    return None


def _plankton_inputs(image, headers, params, size):
    gray = to_gray8(image)
    pixel = float(headers.get("pixel-size-um", b"0") or 0) or None
    if headers["frame-kind"].decode() == "full":
        objects = segment_full(gray, params, pixel)
    else:
        objects = [measure_roi(gray, params, pixel)]
    return [(obj.index, batch_tensor([prepare_roi(obj.image, size)])) for obj in objects]
