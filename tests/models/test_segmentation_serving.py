"""The plankton head with ``ingest.segmentation.method: model``: full frames cut by a real
ONNX segmentation graph on the inference thread, measured from its masks, scored by the
quality graph, doubtful frames first in the review queue; ROI frames in the same batch
classified as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from seawatch.config import load_settings
from seawatch.contracts.card import (
    ONNX_FILE,
    InputSpec,
    ModelCard,
    TrainingSummary,
    load_card,
    sha256_file,
)
from seawatch.contracts.errors import ConfigError
from seawatch.contracts.frames import Frame, SourceRef, parse_headers
from seawatch.contracts.task import PreparedFrame
from seawatch.inference.onnxruntime_backend import OnnxRuntimeBackend
from seawatch.ingest.segment import SegmentParams, segment_full
from seawatch.models.onnx_export import export_onnx
from seawatch.models.plankton.head import PLUGIN, PlanktonClassifier
from seawatch.models.plankton.model_cut import CutOutputs, FullFrameBatch, open_cutter

NOW = 1_790_000_000_000_000_000
QUALITY = 0.42  # what the stand-in quality graph says of every instance


class SignalThreshold(nn.Module):
    """A segmentation graph with a known answer: foreground where the signal is over 20,
    no contact lines."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = torch.sigmoid((x - 20.0) * 2.0)
        return torch.cat([fg, fg * 0.0], 1)


class ConstantQuality(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 0] * 0.0 + QUALITY


@pytest.fixture(scope="module")
def seg_dir(tmp_path_factory) -> Path:
    """A segmentation artifact made of the two graphs above."""
    out = tmp_path_factory.mktemp("segmentation")
    export_onnx(
        SignalThreshold(),
        out / ONNX_FILE,
        torch.rand(1, 1, 64, 64) * 50,
        output_names=("maps",),
        spatial=True,
    )
    export_onnx(
        ConstantQuality(),
        out / "quality.onnx",
        torch.rand(2, 6, 32, 32),
        input_names=("window",),
        output_names=("iou",),
    )
    ModelCard(
        task="segmentation",
        name="signal-threshold",
        version="0.0.1",
        architecture="test graph",
        input=InputSpec(size=256, mean=0.0, std=0.25),
        output="maps",
        files={"quality": "quality.onnx"},
        thresholds={"stride": 32.0},
        training=TrainingSummary(
            command="test", seed=0, data={}, epochs=0, seconds=0, device="cpu"
        ),
        onnx_sha256=sha256_file(out / ONNX_FILE),
        created_at=datetime.now(UTC).isoformat(),
    ).write(out)
    return out


def _frame(image: np.ndarray, kind: str, offset: int) -> tuple[Frame, np.ndarray]:
    payload = cv2.imencode(".png", image)[1].tobytes()
    headers = [
        ("content-type", b"image/png"),
        ("instrument", b"uvp-01"),
        ("captured-at", b"2026-06-01T12:00:00Z"),
        ("frame-kind", kind.encode()),
    ]
    meta = parse_headers(headers, topic="frames.plankton", key=b"uvp-01", now_ns=NOW)
    return Frame(meta, SourceRef("frames.plankton", 0, offset), payload, 0, headers), image


def _field(discs) -> np.ndarray:
    image = np.full((384, 512), 205, np.uint8)
    for x, y, r in discs:
        cv2.circle(image, (x, y), r, 70, -1)
    return image


def _head(model_dir, seg_dir, review_below: float, *, keep_crops=False) -> PlanktonClassifier:
    card = load_card(model_dir)
    cutter = open_cutter(
        seg_dir,
        SegmentParams(),
        threads=1,
        classifier_size=card.input.size,
        max_batch=4,
        review_below=review_below,
    )
    backend = OnnxRuntimeBackend(model_dir / ONNX_FILE, threads=1)
    return PlanktonClassifier(
        backend, card, max_batch=8, top_k=3, cutter=cutter, keep_crops=keep_crops
    )


def test_full_frames_are_cut_by_the_model_and_roi_frames_keep_their_rows(model_dir, seg_dir):
    head = _head(model_dir, seg_dir, review_below=0.6, keep_crops=True)
    plain = PlanktonClassifier(head.backend, head.card, max_batch=8, top_k=3)
    roi = np.full((80, 90), 200, np.uint8)
    cv2.ellipse(roi, (45, 40), (25, 12), 30, 0, 360, 60, -1)
    inputs = [
        _frame(_field([(100, 100, 30), (300, 200, 20)]), "full", 0),
        _frame(roi, "roi", 1),
        _frame(_field([(400, 300, 40)]), "full", 2),
    ]
    prepared = [PreparedFrame.of(f, head.prepare(f, image), 1.0) for f, image in inputs]
    assert [len(p.objects) for p in prepared] == [0, 1, 0]  # full frames wait for the model
    batch = head.stack(prepared)
    assert isinstance(batch, FullFrameBatch) and len(batch.pending) == 2
    assert isinstance(batch[:32], np.ndarray) and len(batch[:32]) == 1  # rows a swap checks
    outputs = head.infer(batch)
    assert isinstance(outputs, CutOutputs)
    results = head.finish(prepared, outputs, 10.0)
    assert [len(r.objects) for r in results] == [2, 1, 1]
    # measured from the model's masks at the frame's resolution
    esd = sorted(o.morph.esd_px for o in results[0].objects)
    assert esd == pytest.approx([40.0, 60.0], rel=0.08)
    assert results[2].objects[0].morph.esd_px == pytest.approx(80.0, rel=0.08)
    # the ROI frame's answer is the one the head gives it alone (rows stay aligned)
    alone = plain.finish([prepared[1]], plain.infer(plain.stack([prepared[1]])), 1.0)
    assert results[1].objects[0].top_k == alone[0].objects[0].top_k
    # the frame's score is stored with its quality; a doubtful one goes to review first
    assert prepared[0].quality.segmentation == pytest.approx(QUALITY)
    assert prepared[1].quality is None
    assert all(o.wrongness == 1.0 for r in (results[0], results[2]) for o in r.objects)
    assert results[1].objects[0].wrongness != 1.0
    assert len(prepared[0].views) == 2 and all(o.crop for o in results[0].objects)
    # the same objects as the threshold on these clean frames
    assert len(segment_full(inputs[0][1], SegmentParams(), None)) == 2
    head.close()


def test_a_confident_frame_is_not_sent_to_review(model_dir, seg_dir):
    head = _head(model_dir, seg_dir, review_below=0.3)
    frame, image = _frame(_field([(200, 150, 25)]), "full", 0)
    prepared = [PreparedFrame.of(frame, head.prepare(frame, image), 1.0)]
    (result,) = head.finish(prepared, head.infer(head.stack(prepared)), 1.0)
    assert len(result.objects) == 1 and result.objects[0].wrongness != 1.0
    head.close()


def test_method_model_is_loaded_from_the_settings_and_a_missing_artifact_is_named(
    model_dir, seg_dir, tmp_path
):
    def settings(seg_model):
        return load_settings(
            tasks={"plankton": {"model_dir": str(model_dir)}},
            ingest__segmentation__method="model",
            ingest__segmentation__model_dir=str(seg_model),
            storage__local__path=str(tmp_path / "store.db"),
        )

    s = settings(seg_dir)
    head = PLUGIN.load(s.tasks["plankton"], s)
    assert head.cutter is not None and head.cutter.review_below == 0.6
    head.close()
    s = settings(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"segmentation\.model_dir .* holds no card\.json; train"):
        PLUGIN.load(s.tasks["plankton"], s)
    s = settings(model_dir)  # a classifier, not a segmentation artifact
    with pytest.raises(ConfigError, match="segmentation artifact"):
        PLUGIN.load(s.tasks["plankton"], s)


def test_the_network_runs_on_proposal_windows_beside_the_loop_and_cuts_the_same_objects(
    model_dir, seg_dir
):
    """A frame with three objects in empty water: the network sees windows around them
    only (a fraction of the frame), on the cutter's own thread, and the objects, their
    measures and the frame's score are those of a whole-frame run."""
    image = _field([(60, 60, 12), (300, 80, 20), (420, 300, 30)])
    cv2.circle(image, (200, 250), 9, 192, -1)  # faint (signal ~16): proposed all the same
    whole = _head(model_dir, seg_dir, review_below=0.6)
    whole.cutter.windows = False
    windowed = _head(model_dir, seg_dir, review_below=0.6)
    results = []
    for head in (whole, windowed):
        frame, _ = _frame(image, "full", 0)
        prepared = [PreparedFrame.of(frame, head.prepare(frame, image), 1.0)]
        segmented = prepared[0].pending.segmented.result()
        results.append((segmented, head.finish(prepared, head.infer(head.stack(prepared)), 1.0)))
        head.close()
    (full_run, (full,)), (win_run, (win,)) = results
    assert len(full_run.windows) == 1 and full_run.windows[0].area == full_run.maps[0].size
    assert len(win_run.windows) == 4
    assert sum(w.area for w in win_run.windows) < 0.5 * full_run.maps[0].size
    # (the stand-in network's foreground starts at a signal of 20: the faint disc is none)
    assert len(win.objects) == len(full.objects) == 3
    for a, b in zip(win.objects, full.objects, strict=True):
        assert a.bbox == b.bbox and a.morph.esd_px == pytest.approx(b.morph.esd_px)
